-- A running job's progress (the worker's JobContext.progress): kept in its hash, and a job.progress event.
-- KEYS[1] job hash  ARGV[1] job id  ARGV[2] progress JSON ({"fraction", "message"})
-- (its only caller: jobengine_worker.executor.ProgressReporter)
local f = redis.call('HMGET', KEYS[1], 'status', 'jobengine_tenant', 'description', 'origin')
if f[1] ~= 'started' then return 0 end  -- ended already (or gone): a late report changes nothing
redis.call('HSET', KEYS[1], 'jobengine_progress', ARGV[2])
emit(f[2], ARGV[1], 'job.progress', f[4] or '', 'started', f[3], ARGV[2])
return 1
