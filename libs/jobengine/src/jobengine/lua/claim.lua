-- Claim up to N waiting jobs from queues in priority order, in one round trip (see _claim.lua).
-- ARGV[1] claim expiry (whole epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] worker name
-- ARGV[4] execution id  ARGV[5] max jobs  ARGV[6] again: '1' for a call sent again after its reply was lost
-- ARGV[7..] queue names, highest priority first
-- (built and parsed by scripts.py: claim_args, parse_claim)

--!include _notify
--!include _claim

events_batched()
local claimed = claim_jobs(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], {unpack(ARGV, 7)})
events_written()
return claimed
