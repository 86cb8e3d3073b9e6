-- Record the outcomes of a worker's claimed jobs: one call for a whole batch (one round trip).
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] worker name
-- then per job, 6 arguments: job id, queue, execution id, outcome,
--   return value (base64 JSON) or exception text (base64 zlib), per outcome,
--   TTL in whole seconds (finished, failed, canceled), run_at epoch s (retry), or the most crashes (crash)
-- outcome: finished | failed | retry | canceled | requeue (interrupted, back to the front) | release (never
--   started) | crash (its executor died: requeued at the front until it has crashed more than `arg` times,
--   then failed with `value`)
-- A cancel asked for while it ran turns retry, requeue, release and a requeued crash into canceled (the
-- value given is its text).
-- Returns per job its new status, or 'lost' when the claim was no longer ours, 'gone' when the job expired;
-- a repeated call (same execution id) changes nothing and answers the job's status.
-- (built and parsed by scripts.py: complete_args, parse_statuses)
--!include _uncount
--!include _notify
--!include _end
--!include _complete

events_batched()
local statuses = complete_from(tonumber(ARGV[1]), ARGV[2], ARGV[3], 4)
events_written()
return statuses
