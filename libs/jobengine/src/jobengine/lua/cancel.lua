-- Cancel a job. Queued, scheduled or deferred: canceled at once. Started: flagged, and its worker told through
-- RQ's command channel (the stop-job command of rq.command.send_stop_job_command).
-- ARGV[1] job id  ARGV[2] now (epoch s)  ARGV[3] now (RQ timestamp)  ARGV[4] cancel message (base64 zlib)
-- ARGV[5] tenant (optional): a job of another tenant, or of none (no jobengine_tenant field: written by
-- the Producer or stock RQ), is 'missing'
-- ARGV[6] this call's token (optional): a run that changed the job records it with its answer, and a
-- repeat of the call (redis-py re-sends a script whose reply was lost) gives the same answer again
-- Returns {result, status}: result is canceled | stopping | terminal | missing
-- (built and parsed by scripts.py: cancel_args, parse_change)
--!include _uncount
--!include _notify
--!include _end
--!include _cancel
local id = ARGV[1]
local jk = K.job .. id
local f = redis.call('HMGET', jk, 'status', 'origin', 'worker_name', 'failure_ttl', 'jobengine_tenant',
                    'jobengine_op')
local st, q = f[1], f[2]
if not st then return {'missing', ''} end
if ARGV[5] and ARGV[5] ~= '' and f[5] ~= ARGV[5] then return {'missing', ''} end
local token = ARGV[6] or ''
if token ~= '' and f[6] then
  if f[6] == token .. ' canceled' then return {'canceled', 'canceled'} end
  if f[6] == token .. ' stopping' then return {'stopping', 'started'} end
end
if st == 'started' then
  redis.call('HSET', jk, 'jobengine_cancel', '1', 'jobengine_op', token .. ' stopping')
  if f[3] and f[3] ~= '' then
    redis.call('PUBLISH', K.pubsub .. f[3], '{"command": "stop-job", "job_id": "' .. id .. '"}')
  end
  return {'stopping', st}
end
if st ~= 'queued' and st ~= 'scheduled' and st ~= 'deferred' then return {'terminal', st} end
local ended = ended_jobs(tonumber(ARGV[2]))
cancel_waiting(ended, jk, id, q, st, ARGV[3], ARGV[4], f[4], token .. ' canceled', true)
end_jobs_written(ended)
return {'canceled', 'canceled'}
