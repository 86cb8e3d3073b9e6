-- Write one job and make it visible, atomically, with an optional idempotency key, a backlog
-- limit, a per-tenant backlog quota and a per-key token bucket (refusals write nothing).
-- KEYS[1] job hash  KEYS[2] queue list  KEYS[3] scheduled zset  KEYS[4] notify list
-- KEYS[5] idempotency key, or '' for none  KEYS[6] rate-limit bucket hash, or '' for none
-- KEYS[7] the tenant's backlog counter, or '' for none (no quota: the job is not counted)
-- KEYS[8] (optional) the tenant's listing index stream, or '' for none
-- ARGV[1] job id  ARGV[2] run_at epoch seconds (0 = now)  ARGV[3] index max age, seconds (entries older are trimmed; 0 = never)
-- ARGV[4] idempotency TTL  ARGV[5] idempotency fingerprint  ARGV[6] queue key
-- ARGV[7] max backlog (LLEN of the queue; 0 = no limit)
-- ARGV[8] rate limit, tokens per second (0 = no limit)  ARGV[9] bucket size (burst)
-- ARGV[10] the tenant's quota: most jobs not yet ended (queued, scheduled, started) it may hold
-- ARGV[11..] hash fields
-- (built and parsed by scripts.py: enqueue_keys, enqueue_args, parse_enqueue)
-- Returns {1, id} when written, {0, existing_id, fingerprint, existing_status} on an idempotent repeat
-- (existing_status is '' when that job has expired already), {2, queue length} when the queue's
-- backlog is at its limit, {3, milliseconds until a token} when the key's rate limit is exhausted,
-- {4, jobs held} when the tenant is at its quota.
-- A repeat is answered before any limit: retrying an accepted request is never refused. The checks
-- only read; the token is taken last, so a refusal for another reason does not spend one.
-- Safe to run twice: a job id is drawn once per job, so its hash existing means this very call ran
-- already (redis-py re-sent it after a lost reply, or a pipeline was retried): answered as written again.
-- A counted job carries its counter's name in the field jobengine_backlog; the script that ends it
-- (complete, recover, cancel) decrements the counter once (see those scripts).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, ARGV[1]}
end
if KEYS[5] ~= '' then
  local existing = redis.call('GET', KEYS[5])
  if existing then
    local id, fp = existing, ''
    local sep = string.find(existing, ' ', 1, true)
    if sep then
      id, fp = string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)
    end
    return {0, id, fp, redis.call('HGET', K.job .. id, 'status') or ''}
  end
end
local max_backlog = tonumber(ARGV[7])
if max_backlog > 0 then
  local depth = redis.call('LLEN', KEYS[2])
  if depth >= max_backlog then
    return {2, depth}
  end
end
if KEYS[7] ~= '' then
  local held = tonumber(redis.call('GET', KEYS[7]) or '0')
  if held >= tonumber(ARGV[10]) then
    return {4, held}
  end
end
local rate = tonumber(ARGV[8])
if KEYS[6] ~= '' and rate > 0 then
  local burst = tonumber(ARGV[9])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local bucket = redis.call('HMGET', KEYS[6], 'tokens', 'at')
  local tokens, at = tonumber(bucket[1]), tonumber(bucket[2])
  if tokens == nil or at == nil then
    tokens, at = burst, now
  end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then
    return {3, math.ceil((1 - tokens) / rate * 1000)}
  end
  redis.call('HSET', KEYS[6], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  -- a full bucket is the same as none: let idle keys' buckets expire
  redis.call('PEXPIRE', KEYS[6], math.ceil(burst / rate * 1000) + 1000)
end
if KEYS[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[1] .. ' ' .. ARGV[5], 'EX', ARGV[4])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
if KEYS[7] ~= '' then
  redis.call('INCR', KEYS[7])
  redis.call('HSET', KEYS[1], 'jobengine_backlog', KEYS[7])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
-- wake an idle worker: to claim the job, or to re-plan its scheduler tick for a delayed one
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
redis.call('SADD', K.queues, ARGV[6])
-- the listing index: a stream (appends are O(1) and dense; a sorted set slowed submits by 15 % at 1M jobs)
local max_age = tonumber(ARGV[3])
if max_age > 0 then  -- '~': only whole stream nodes go, so the trim costs nearly nothing per submit
  local t = redis.call('TIME')
  redis.call('XADD', K.index, 'MINID', '~', (tonumber(t[1]) - max_age) * 1000, '*', 'id', ARGV[1])
else
  redis.call('XADD', K.index, '*', 'id', ARGV[1])
end
-- the tenant's own listing index (KEYS[8]; '' or absent: none), trimmed as the shared one, gone once idle that long
if KEYS[8] and KEYS[8] ~= '' then
  if max_age > 0 then
    redis.call('XADD', KEYS[8], 'MINID', '~', (tonumber(redis.call('TIME')[1]) - max_age) * 1000, '*', 'id', ARGV[1])
    redis.call('EXPIRE', KEYS[8], max_age)
  else
    redis.call('XADD', KEYS[8], '*', 'id', ARGV[1])
  end
end
return {1, ARGV[1]}
