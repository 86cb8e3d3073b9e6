-- Record the outcomes of a worker's claimed jobs: one call for a whole batch (one round trip).
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] worker name
-- then per job, 6 arguments: job id, queue, execution id, outcome,
--   return value (base64 JSON) or exception text (base64 zlib), per outcome,
--   TTL in whole seconds (finished, failed, canceled) or run_at epoch s (retry)
-- outcome: finished | failed | retry | canceled | requeue (interrupted, back to the front) | release (never started)
-- Returns per job its new status, or 'lost' when the claim was no longer ours, 'gone' when the job expired,
-- 'dup' when this outcome was already recorded (a retried call).
--!include _uncount (the tenant quota's decrement, shared: scripts.py inlines it)
--!include _complete

return complete_from(tonumber(ARGV[1]), ARGV[2], ARGV[3], 4)
