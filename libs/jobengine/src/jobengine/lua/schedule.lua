-- Move due jobs of every queue from RQ's ScheduledJobRegistry to their queue (delayed jobs, retries).
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] max per queue
-- Returns {moved, earliest score still scheduled or -1}. Safe to run twice: a moved job is no longer due.
-- (built and parsed by scripts.py: schedule_args, parse_schedule)
--!include _notify
local moved = 0
local earliest = -1
for _, qkey in ipairs(redis.call('SMEMBERS', K.queues)) do
  local q = string.sub(qkey, #K.queue + 1)
  local sk = K.scheduled .. q
  local ids = redis.call('ZRANGEBYSCORE', sk, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
  local here = 0
  for _, id in ipairs(ids) do
    redis.call('ZREM', sk, id)
    local jk = K.job .. id
    if redis.call('HGET', jk, 'status') == 'scheduled' then
      redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', ARGV[2])
      redis.call('RPUSH', qkey, id)
      here = here + 1
    end
  end
  if here > 0 then
    notify(q)
    moved = moved + here
  end
  local first = redis.call('ZRANGE', sk, 0, 0, 'WITHSCORES')
  if first[2] then
    local score = tonumber(first[2])
    if earliest < 0 or score < earliest then earliest = score end
  end
end
return {moved, tostring(earliest)}
