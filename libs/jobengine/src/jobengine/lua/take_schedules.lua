-- Take up to N due schedules for this process: each one taken is re-scored to the end of a lease, so no other
-- process looks at it meanwhile; one whose process dies is due again when the lease ends (docs/guarantees.md,
-- "Schedules"). The tick to fire comes from the schedule's hash, never from the score.
-- ARGV[1] now (epoch s)  ARGV[2] lease end (epoch s)  ARGV[3] most schedules to take
-- Returns {members taken, earliest score left in the zset or '-1'}. (scripts.py: take_args, parse_take)
local due = redis.call('ZRANGEBYSCORE', K.due, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #due > 0 then
  local scored = {}
  for _, member in ipairs(due) do
    scored[#scored + 1] = ARGV[2]
    scored[#scored + 1] = member
  end
  redis.call('ZADD', K.due, unpack(scored))
end
local first = redis.call('ZRANGE', K.due, 0, 0, 'WITHSCORES')
return {due, first[2] or '-1'}
