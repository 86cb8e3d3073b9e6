-- Included by requeue.lua and bulk.lua (scripts.py inlines it where they say --!include): a failed (or
-- canceled) job back to its queue with a fresh retry budget, written once for both.
-- f: the job's fields REQUEUE_FIELDS, as HMGET read them (a caller may read more after them).
-- Needs _end (for _dependents) included before it: a job with unmet dependencies waits deferred, and the
-- dependents its failure ended are revived (docs/guarantees.md, "Workflows").
local REQUEUE_FIELDS = {'status', 'origin', 'retry_intervals', 'jobengine_tenant', 'jobengine_backlog', 'jobengine_op'}

-- Requeue the job (id, its hash jk); op: what its jobengine_op field records; ended: as for end_job. The
-- caller wakes a worker (notify) of the queue returned.
local function requeue_job(ended, id, jk, f, stamp, op)
  local q = f[2]
  redis.call('ZREM', K.failed .. q, id)
  redis.call('ZREM', K.canceled .. q, id)
  local retries = 0
  if f[3] then retries = #cjson.decode(f[3]) end
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', stamp, 'started_at', '', 'ended_at', '',
             'worker_name', '', 'retries_left', retries, 'number_of_retries', 0, 'jobengine_recoveries', 0,
             'jobengine_op', op)
  redis.call('HDEL', jk, 'jobengine_cancel', 'jobengine_progress')
  redis.call('PERSIST', jk)
  redis.call('PERSIST', K.results .. id)
  if f[5] and string.sub(f[5], 1, 1) == '-' then  -- it was counted against its tenant's quota: again
    local counter = string.sub(f[5], 2)
    redis.call('INCR', counter)
    redis.call('HSET', jk, 'jobengine_backlog', counter)
  end
  if reopen(id, f[1]) then revive_dependents(ended, id, stamp) end
  if deferred_again(ended, id, jk, q, stamp) then
    -- waits for its dependencies (or ended again at once by a failed one: end_job told that)
    if redis.call('HGET', jk, 'status') == 'deferred' then emit_job(jk, id, 'job.deferred', q, 'deferred') end
  else
    redis.call('RPUSH', K.queue .. q, id)
    emit_job(jk, id, 'job.queued', q, 'queued')
  end
  redis.call('SADD', K.queues, K.queue .. q)
  return q
end
