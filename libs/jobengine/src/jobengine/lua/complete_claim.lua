-- A busy worker's step, in one round trip: record the outcomes of the batch it ran (as complete.lua),
-- then claim its next batch (as claim.lua). One visit to Redis a batch instead of two.
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] worker name  ARGV[4] claim expiry (whole epoch s)
-- ARGV[5] execution id  ARGV[6] max jobs to claim  ARGV[7] again ('1': sent again, see _claim.lua)
-- ARGV[8] number of queues Q  ARGV[9 .. 8+Q] queue names, highest priority first; then 6 arguments per
-- outcome, as in complete.lua
-- Returns {statuses (one per outcome, as complete.lua), claimed jobs (as claim.lua)}. Safe to run twice,
-- as both are. (built and parsed by scripts.py: complete_claim_args, parse_complete_claim)

--!include _uncount
--!include _notify
--!include _end
--!include _complete
--!include _claim

events_batched()
local nq = tonumber(ARGV[8])
local statuses = complete_from(tonumber(ARGV[1]), ARGV[2], ARGV[3], 9 + nq)
local claimed = claim_jobs(ARGV[4], ARGV[2], ARGV[3], ARGV[5], tonumber(ARGV[6]), ARGV[7], {unpack(ARGV, 9, 8 + nq)})
events_written()
return {statuses, claimed}
