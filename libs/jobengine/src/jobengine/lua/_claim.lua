-- Included by claim.lua and complete_claim.lua, after _notify (scripts.py inlines it where they say
-- --!include).
-- Claim up to `limit` waiting jobs from `queues` (highest priority first), in queue order, skipping the
-- paused ones (their jobengine:paused:<queue> marker exists: POST /v1/queues/{name}:pause).
-- Each claimed job is marked started and entered in RQ's StartedJobRegistry (rq:wip:<queue>)
-- under '<job_id>:<execution_id>', scored by `expiry` (whole epoch s), when the claim lapses unless renewed.
-- The execution id is `exec`, one for the whole claim: a job is claimed once in it, so id and exec still
-- name one execution. Redis formats a Lua number it is given with sprintf, so the expiry and the execution
-- id come from the caller as strings, and the attempt count is looked up as one.
-- Safe to run twice: a call sent again after its reply was lost says so (`again`), and is answered with
-- the jobs its first run claimed, found in the StartedJobRegistry under its execution id, instead of a
-- second batch (a first run that claimed nothing, or never ran, claims now). Only a repeat pays for that
-- look-up, which walks the queues' StartedJobRegistries: the first call costs nothing more.
-- Returns per job: id, queue, execution id, attempt, data, timeout, meta, retries_left, retry_intervals,
-- number_of_retries, enqueued_at, created_at, result_ttl, failure_ttl
local function claimed_again(exec, queues)
  local out = {}
  local suffix = ':' .. exec
  for _, q in ipairs(queues) do
    for _, m in ipairs(redis.call('ZRANGE', K.wip .. q, 0, -1)) do
      if string.sub(m, -#suffix) == suffix then
        local id = string.sub(m, 1, #m - #suffix)
        local f = redis.call('HMGET', K.job .. id, 'status', 'jobengine_cancel', 'data', 'timeout', 'meta',
                             'retries_left', 'retry_intervals', 'number_of_retries', 'enqueued_at', 'created_at',
                             'result_ttl', 'failure_ttl', 'jobengine_attempts', 'jobengine_claim')
        if f[1] == 'started' and f[14] == exec then
          out[#out + 1] = {id, q, exec, tonumber(f[13]), f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]}
        end
      end
    end
  end
  return out
end

local MAX_DROPPED = 1000

local function claim_jobs(expiry, stamp, worker, exec, limit, again, queues)
  if again == '1' then
    local out = claimed_again(exec, queues)
    if #out > 0 then return out end
  end
  local out = {}
  local n = 0
  local attempt = {'1', '2', '3', '4', '5', '6', '7', '8', '9'}  -- as strings: a number is sprintf'd
  for _, q in ipairs(queues) do
    local qkey = K.queue .. q
    local wip = {}  -- score, member pairs for one ZADD a queue
    local open = redis.call('EXISTS', K.paused .. q) == 0  -- a paused queue is skipped: one check a queue a call
    local popped = 0
    while open and n < limit do
      local ids = redis.call('LPOP', qkey, limit - n)
      if not ids then break end
      popped = popped + #ids
      for _, id in ipairs(ids) do
        local jk = K.job .. id
        local f = redis.call('HMGET', jk, 'status', 'jobengine_cancel', 'data', 'timeout', 'meta', 'retries_left',
                             'retry_intervals', 'number_of_retries', 'enqueued_at', 'created_at', 'result_ttl',
                             'failure_ttl', 'jobengine_attempts', 'jobengine_tenant')
        if f[1] == 'queued' and not f[2] then
          n = n + 1
          local attempts = (tonumber(f[13]) or 0) + 1
          redis.call('HSET', jk, 'status', 'started', 'started_at', stamp, 'ended_at', '',
                     'worker_name', worker, 'last_heartbeat', stamp, 'jobengine_claim', exec,
                     'jobengine_attempts', attempt[attempts] or attempts)
          redis.call('PERSIST', jk)
          if f[14] then emit(f[14], id, 'job.started', q, 'started') end
          wip[#wip + 1] = expiry
          wip[#wip + 1] = id .. ':' .. exec
          out[#out + 1] = {id, q, exec, attempts, f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]}
        end
      end
      -- ids of jobs no longer queued (a bulk cancel leaves them) are dropped, at most MAX_DROPPED a call, so
      -- a long run of them never holds Redis: the next call, woken at once, goes on
      if popped >= MAX_DROPPED and n < limit then
        notify(q)
        break
      end
    end
    if #wip > 0 then redis.call('ZADD', K.wip .. q, unpack(wip)) end
    if n >= limit then
      -- more may be waiting: pass the wake-up on to another idle worker
      if redis.call('LLEN', qkey) > 0 then notify(q) end
      break
    end
  end
  return out
end
