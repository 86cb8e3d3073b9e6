-- Requeue a failed (or canceled) job with a fresh retry budget. ARGV[1] job id  ARGV[2] now (RQ timestamp)
-- ARGV[3] tenant (optional): a job of another tenant, or of none (no jobengine_tenant field), is 'missing'
-- ARGV[4] this call's token (optional): a repeat of a call that requeued the job answers 'queued' again
-- (redis-py re-sends a script whose reply was lost)
-- Returns {result, status}: queued | not_failed | missing (built and parsed by scripts.py: requeue_args,
-- parse_change)
--!include _notify
local id = ARGV[1]
local jk = K.job .. id
local f = redis.call('HMGET', jk, 'status', 'origin', 'retry_intervals', 'jobengine_tenant', 'jobengine_backlog',
                    'jobengine_op')
if not f[1] then return {'missing', ''} end
if ARGV[3] and ARGV[3] ~= '' and f[4] ~= ARGV[3] then return {'missing', ''} end
local token = ARGV[4] or ''
if token ~= '' and f[6] == token .. ' queued' then return {'queued', 'queued'} end
if f[1] ~= 'failed' and f[1] ~= 'canceled' and f[1] ~= 'stopped' then return {'not_failed', f[1]} end
local q = f[2]
redis.call('ZREM', K.failed .. q, id)
redis.call('ZREM', K.canceled .. q, id)
local retries = 0
if f[3] then retries = #cjson.decode(f[3]) end
redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', ARGV[2], 'started_at', '', 'ended_at', '',
           'worker_name', '', 'retries_left', retries, 'number_of_retries', 0, 'jobengine_recoveries', 0,
           'jobengine_op', token .. ' queued')
redis.call('HDEL', jk, 'jobengine_cancel', 'jobengine_progress')
redis.call('PERSIST', jk)
redis.call('PERSIST', K.results .. id)
if f[5] and string.sub(f[5], 1, 1) == '-' then  -- it was counted against its tenant's quota: again
  local counter = string.sub(f[5], 2)
  redis.call('INCR', counter)
  redis.call('HSET', jk, 'jobengine_backlog', counter)
end
redis.call('RPUSH', K.queue .. q, id)
redis.call('SADD', K.queues, K.queue .. q)
notify(q)
return {'queued', 'queued'}
