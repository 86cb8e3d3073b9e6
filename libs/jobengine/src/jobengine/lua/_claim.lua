-- Included by claim.lua and complete_claim.lua, after _keys and _end (scripts.py inlines it where they say
-- --!include).
-- Claim up to `limit` waiting jobs from `queues` (highest priority first), in queue order.
-- Each claimed job is marked started and entered in RQ's StartedJobRegistry (rq:wip:<queue>)
-- under '<job_id>:<execution_id>', scored by `expiry` (whole epoch s), when the claim lapses unless renewed.
-- The execution id is `exec`, one for the whole claim: a job is claimed once in it, so id and exec still
-- name one execution. Redis formats a Lua number it is given with sprintf, so the expiry and the execution
-- id come from the caller as strings, and the attempt count is looked up as one.
-- Safe to run twice: the worker's last claim is kept in jobengine:claim:<worker> until its expiry ("<exec>
-- <id> <queue> <id> <queue> ..."), and a call with that execution id again (a call re-sent after its reply
-- was lost) answers the jobs it claimed, still held under it, instead of claiming a second batch.
-- Returns per job: id, queue, execution id, attempt, data, timeout, meta, retries_left, retry_intervals,
-- number_of_retries, enqueued_at, created_at, result_ttl, failure_ttl
local CLAIM_FIELDS = {'status', 'jobengine_cancel', 'data', 'timeout', 'meta', 'retries_left', 'retry_intervals',
                      'number_of_retries', 'enqueued_at', 'created_at', 'result_ttl', 'failure_ttl',
                      'jobengine_attempts', 'jobengine_claim'}

local function claim_row(id, q, exec, attempts, f)
  return {id, q, exec, attempts, f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]}
end

local function claimed_again(record, exec)
  local out, parts = {}, {}
  for part in string.gmatch(record, '%S+') do parts[#parts + 1] = part end
  for i = 2, #parts, 2 do
    local f = redis.call('HMGET', K.job .. parts[i], unpack(CLAIM_FIELDS))
    if f[1] == 'started' and f[14] == exec then
      out[#out + 1] = claim_row(parts[i], parts[i + 1], exec, tonumber(f[13]), f)
    end
  end
  return out
end

local function claim_jobs(expiry, stamp, worker, exec, limit, queues)
  local record_key = K.claim .. worker
  local record = redis.call('GET', record_key)
  if record and string.sub(record, 1, #exec + 1) == exec .. ' ' then return claimed_again(record, exec) end
  local out, held = {}, {exec}
  local n = 0
  local attempt = {'1', '2', '3', '4', '5', '6', '7', '8', '9'}  -- as strings: a number is sprintf'd
  for _, q in ipairs(queues) do
    local qkey = K.queue .. q
    local wip = {}  -- score, member pairs for one ZADD a queue
    while n < limit do
      local ids = redis.call('LPOP', qkey, limit - n)
      if not ids then break end
      for _, id in ipairs(ids) do
        local jk = K.job .. id
        local f = redis.call('HMGET', jk, 'status', 'jobengine_cancel', 'data', 'timeout', 'meta', 'retries_left',
                             'retry_intervals', 'number_of_retries', 'enqueued_at', 'created_at', 'result_ttl',
                             'failure_ttl', 'jobengine_attempts')
        if f[1] == 'queued' and not f[2] then
          n = n + 1
          local attempts = (tonumber(f[13]) or 0) + 1
          redis.call('HSET', jk, 'status', 'started', 'started_at', stamp, 'ended_at', '',
                     'worker_name', worker, 'last_heartbeat', stamp, 'jobengine_claim', exec,
                     'jobengine_attempts', attempt[attempts] or attempts)
          redis.call('PERSIST', jk)
          wip[#wip + 1] = expiry
          wip[#wip + 1] = id .. ':' .. exec
          held[#held + 1] = id
          held[#held + 1] = q
          out[#out + 1] = claim_row(id, q, exec, attempts, f)
        end
      end
    end
    if #wip > 0 then redis.call('ZADD', K.wip .. q, unpack(wip)) end
    if n >= limit then
      -- more may be waiting: pass the wake-up on to another idle worker
      if redis.call('LLEN', qkey) > 0 then notify(q) end
      break
    end
  end
  if n > 0 then redis.call('SET', record_key, table.concat(held, ' '), 'EXAT', expiry) end
  return out
end
