-- Write one job and make it visible, atomically, with an optional idempotency key.
-- KEYS[1] job hash  KEYS[2] queue list  KEYS[3] scheduled zset  KEYS[4] notify list
-- KEYS[5] idempotency key, or '' for none
-- ARGV[1] job id  ARGV[2] run_at epoch seconds (0 = now)  ARGV[3] index score (ms)
-- ARGV[4] idempotency TTL  ARGV[5] idempotency fingerprint  ARGV[6] queue key  ARGV[7..] hash fields
-- Returns {1, id} when written, {0, existing_id, fingerprint, existing_status} on an idempotent repeat
-- (existing_status is '' when that job has expired already).
if KEYS[5] ~= '' then
  local existing = redis.call('GET', KEYS[5])
  if existing then
    local id, fp = existing, ''
    local sep = string.find(existing, ' ', 1, true)
    if sep then
      id, fp = string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)
    end
    return {0, id, fp, redis.call('HGET', 'rq:job:' .. id, 'status') or ''}
  end
  redis.call('SET', KEYS[5], ARGV[1] .. ' ' .. ARGV[5], 'EX', ARGV[4])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
-- wake an idle worker: to claim the job, or to re-plan its scheduler tick for a delayed one
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
redis.call('SADD', 'rq:queues', ARGV[6])
redis.call('ZADD', 'jobengine:index', ARGV[3], ARGV[1])
return {1, ARGV[1]}
