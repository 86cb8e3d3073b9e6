-- Included by cancel.lua and bulk.lua, after _uncount, _notify and _end (scripts.py inlines it where they
-- say --!include): a waiting job (queued or scheduled, status st) of queue q canceled, written once for both.
-- unlist: take a queued job's id out of the queue list (LREM, a walk of the list: cancel.lua's one job);
-- bulk.lua leaves it, and the claim script drops an id whose job is no longer queued when it reaches it.
-- A deferred job (waiting for its dependencies) leaves RQ's DeferredJobRegistry.
-- op: what the job's jobengine_op field records; ended: as for end_job (_end.lua).
local function cancel_waiting(ended, jk, id, q, st, stamp, message, ttl, op, unlist)
  if st == 'queued' then
    if unlist then redis.call('LREM', K.queue .. q, 0, id) end
  elseif st == 'deferred' then
    redis.call('ZREM', K.deferred .. q, id)
    keep_edges(id, ttl or '604800')
  else
    redis.call('ZREM', K.scheduled .. q, id)
  end
  redis.call('HSET', jk, 'jobengine_cancel', '1', 'jobengine_op', op)
  end_job(ended, jk, id, q, 'canceled', stamp, '', '', '', message, ttl or '604800', nil)
end
