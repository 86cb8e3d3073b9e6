-- Included by complete.lua and complete_claim.lua (scripts.py inlines it where they say --!include);
-- needs _uncount.lua included before it.
-- complete_job records one claimed job's outcome: now (epoch s), stamp (RQ timestamp), worker name, job id,
-- queue, execution id, outcome, value, arg as described in complete.lua; returns the job's new status.
-- complete_from records the outcomes given in ARGV from index `first` on, 6 arguments each. It writes the
-- registries once a key, not once a job: first the ZREMs from the StartedJobRegistry, then the jobs, whose
-- ZADDs to the finished, failed or canceled registry complete_job gathers in `ended.zadd`, scored by when
-- they expire: whole seconds, formatted once a TTL in `ended.at` (Redis formats a Lua number with sprintf,
-- which was the largest single cost of these scripts when done for every job). The ZREM comes first
-- on purpose: Redis refuses a script over maxmemory (noeviction) only if its first write is one that can
-- grow memory, so outcomes are still recorded when Redis is full (the API's memory guard keeps the room).
local function notify(q)
  redis.call('LPUSH', 'jobengine:notify:' .. q, '1')
  redis.call('LTRIM', 'jobengine:notify:' .. q, 0, 0)
end

local function add(lists, key, ...)
  local args = lists[key]
  if not args then
    args = {}
    lists[key] = args
  end
  for _, v in ipairs({...}) do args[#args + 1] = v end
end

local function expires_at(ended, ttl)
  local at = ended.at[ttl]
  if not at then
    at = tostring(ended.now + tonumber(ttl))
    ended.at[ttl] = at
  end
  return at
end

local function complete_job(ended, now, stamp, worker, id, q, exec, outcome, value, arg)
  local jk = 'rq:job:' .. id
  local results = 'rq:results:' .. id
  local f = redis.call('HMGET', jk, 'status', 'jobengine_claim', 'jobengine_cancel', 'jobengine_backlog')
  if not f[1] then return 'gone' end
  if f[2] == 'done:' .. exec then return 'dup' end
  if f[2] ~= exec then
    -- Our claim was recovered while we ran: keep a result rather than run the job again.
    if outcome == 'release' or outcome == 'requeue' then return 'lost' end
    if f[1] == 'queued' then
      redis.call('LREM', 'rq:queue:' .. q, 1, id)
    elseif f[1] == 'scheduled' then
      redis.call('ZREM', 'rq:scheduled:' .. q, id)
    else
      return 'lost'
    end
  end
  if f[3] and (outcome == 'retry' or outcome == 'requeue' or outcome == 'release') then
    outcome = 'canceled'  -- a cancel asked for while it ran wins over running it again
  end

  local status
  if outcome == 'finished' then
    redis.call('HSET', jk, 'status', 'finished', 'ended_at', stamp, 'jobengine_claim', 'done:' .. exec)
    redis.call('XADD', results, 'MAXLEN', '~', '10', '*', 'type', '1', 'worker_name', worker,
               'return_value', value, 'execution_id', exec)
    redis.call('EXPIRE', jk, arg)
    redis.call('EXPIRE', results, arg)
    add(ended.zadd, 'rq:finished:' .. q, expires_at(ended, arg), id)
    uncount(jk, f[4])
    status = 'finished'
  elseif outcome == 'failed' or outcome == 'canceled' then
    local rtype = '2'
    status = 'failed'
    local registry = 'rq:failed:' .. q
    if outcome == 'canceled' then
      rtype = '3'
      status = 'canceled'
      registry = 'rq:canceled:' .. q
    end
    redis.call('HSET', jk, 'status', status, 'ended_at', stamp, 'jobengine_claim', 'done:' .. exec)
    redis.call('XADD', results, 'MAXLEN', '~', '10', '*', 'type', rtype, 'worker_name', worker,
               'exc_string', value, 'execution_id', exec)
    redis.call('EXPIRE', jk, arg)
    redis.call('EXPIRE', results, arg)
    add(ended.zadd, registry, expires_at(ended, arg), id)
    uncount(jk, f[4])
  elseif outcome == 'retry' then
    local run_at = tonumber(arg)
    redis.call('HINCRBY', jk, 'retries_left', -1)
    redis.call('HINCRBY', jk, 'number_of_retries', 1)
    redis.call('XADD', results, 'MAXLEN', '~', '10', '*', 'type', '2', 'worker_name', worker,
               'exc_string', value, 'execution_id', exec)
    if run_at > now then
      redis.call('HSET', jk, 'status', 'scheduled', 'worker_name', '', 'jobengine_claim', 'done:' .. exec)
      redis.call('ZADD', 'rq:scheduled:' .. q, run_at, id)
      return 'scheduled'
    end
    redis.call('HSET', jk, 'status', 'queued', 'worker_name', '', 'jobengine_claim', 'done:' .. exec,
               'enqueued_at', stamp)
    redis.call('RPUSH', 'rq:queue:' .. q, id)
    notify(q)
    return 'queued'
  elseif outcome == 'requeue' or outcome == 'release' then
    if outcome == 'release' then redis.call('HINCRBY', jk, 'jobengine_attempts', -1) end
    redis.call('HSET', jk, 'status', 'queued', 'worker_name', '', 'started_at', '', 'jobengine_claim',
               'done:' .. exec)
    redis.call('LPUSH', 'rq:queue:' .. q, id)
    notify(q)
    return 'queued'
  else
    return 'unknown outcome ' .. outcome
  end
  redis.call('PUBLISH', 'jobengine:done:' .. id, status)
  return status
end

local function complete_from(now, stamp, worker, first)
  local zrem, statuses = {}, {}
  local ended = {zadd = {}, at = {}, now = math.floor(now)}
  for i = first, #ARGV, 6 do add(zrem, 'rq:wip:' .. ARGV[i + 1], ARGV[i] .. ':' .. ARGV[i + 2]) end
  for key, members in pairs(zrem) do redis.call('ZREM', key, unpack(members)) end
  for i = first, #ARGV, 6 do
    statuses[#statuses + 1] = complete_job(ended, now, stamp, worker, ARGV[i], ARGV[i + 1], ARGV[i + 2],
                                           ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
  end
  for key, args in pairs(ended.zadd) do redis.call('ZADD', key, unpack(args)) end
  return statuses
end
