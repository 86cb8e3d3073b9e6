-- Requeue a failed (or canceled) job with a fresh retry budget. ARGV[1] job id  ARGV[2] now (RQ timestamp)
-- ARGV[3] tenant (optional): a job of another tenant, or of none (no jobengine_tenant field), is 'missing'
-- ARGV[4] this call's token (optional): a repeat of a call that requeued the job answers 'queued' again
-- (redis-py re-sends a script whose reply was lost)
-- Returns {result, status}: queued (status: queued, or deferred while dependencies are pending) | not_failed | missing (built and parsed by scripts.py: requeue_args,
-- parse_change)
--!include _uncount
--!include _notify
--!include _end
--!include _requeue
local id = ARGV[1]
local jk = K.job .. id
local f = redis.call('HMGET', jk, unpack(REQUEUE_FIELDS))
if not f[1] then return {'missing', ''} end
if ARGV[3] and ARGV[3] ~= '' and f[4] ~= ARGV[3] then return {'missing', ''} end
local token = ARGV[4] or ''
if token ~= '' and f[6] == token .. ' queued' then return {'queued', f[1]} end  -- (its status now, as the first answered)
if f[1] ~= 'failed' and f[1] ~= 'canceled' and f[1] ~= 'stopped' then return {'not_failed', f[1]} end
local ended = ended_jobs(tonumber(redis.call('TIME')[1]))
notify(requeue_job(ended, id, jk, f, ARGV[2], token .. ' queued'))
end_jobs_written(ended)
-- queued, or deferred again when dependencies of it are still pending (workflows)
return {'queued', redis.call('HGET', jk, 'status') or 'queued'}
