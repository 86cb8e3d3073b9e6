-- enqueue(keys, argv): enqueue.lua's body as a function, so fire.lua (a schedule's tick) writes its job
-- through the same code as a submit. keys and argv as enqueue.lua's KEYS and ARGV (see its header).
local function enqueue(keys, argv)
  if redis.call('EXISTS', keys[1]) == 1 then
    return {1, argv[1]}
  end
  if keys[5] ~= '' then
    local existing = redis.call('GET', keys[5])
    if existing then
      local id, fp = existing, ''
      local sep = string.find(existing, ' ', 1, true)
      if sep then
        id, fp = string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)
      end
      return {0, id, fp, redis.call('HGET', K.job .. id, 'status') or ''}
    end
  end
  local max_backlog = tonumber(argv[7])
  if max_backlog > 0 then
    local depth = redis.call('LLEN', keys[2])
    if depth >= max_backlog then
      return {2, depth}
    end
  end
  if keys[7] ~= '' then
    local held = tonumber(redis.call('GET', keys[7]) or '0')
    if held >= tonumber(argv[10]) then
      return {4, held}
    end
  end
  local rate = tonumber(argv[8])
  if keys[6] ~= '' and rate > 0 then
    local burst = tonumber(argv[9])
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    local bucket = redis.call('HMGET', keys[6], 'tokens', 'at')
    local tokens, at = tonumber(bucket[1]), tonumber(bucket[2])
    if tokens == nil or at == nil then
      tokens, at = burst, now
    end
    tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
    if tokens < 1 then
      return {3, math.ceil((1 - tokens) / rate * 1000)}
    end
    redis.call('HSET', keys[6], 'tokens', tostring(tokens - 1), 'at', tostring(now))
    -- a full bucket is the same as none: let idle keys' buckets expire
    redis.call('PEXPIRE', keys[6], math.ceil(burst / rate * 1000) + 1000)
  end
  if keys[5] ~= '' then
    redis.call('SET', keys[5], argv[1] .. ' ' .. argv[5], 'EX', argv[4])
  end
  redis.call('HSET', keys[1], unpack(argv, 11))
  if keys[7] ~= '' then
    redis.call('INCR', keys[7])
    redis.call('HSET', keys[1], 'jobengine_backlog', keys[7])
  end
  if tonumber(argv[2]) > 0 then
    redis.call('ZADD', keys[3], argv[2], argv[1])
  else
    redis.call('RPUSH', keys[2], argv[1])
  end
  -- wake an idle worker: to claim the job, or to re-plan its scheduler tick for a delayed one
  redis.call('LPUSH', keys[4], '1')
  redis.call('LTRIM', keys[4], 0, 0)
  redis.call('SADD', K.queues, argv[6])
  -- the listing index: a stream (appends are O(1) and dense; a sorted set slowed submits by 15 % at 1M jobs),
  -- the job's tenant's own (keys[8]) or, for a job without one (or with authentication off), the shared one:
  -- one index a job, so a tenant's listing never scans other tenants' entries and a submit appends once
  -- (keys[9], when given: the shared one as well: the Producer's tenant jobs, listed by their tenant's keys and
  -- by a caller that sees every job)
  local index = K.index
  if keys[8] and keys[8] ~= '' then index = keys[8] end
  local max_age = tonumber(argv[3])
  local min_id = nil
  if max_age > 0 then  -- '~': only whole stream nodes go, so the trim costs nearly nothing per submit
    min_id = (tonumber(redis.call('TIME')[1]) - max_age) * 1000
    redis.call('XADD', index, 'MINID', '~', min_id, '*', 'id', argv[1])
  else
    redis.call('XADD', index, '*', 'id', argv[1])
  end
  if keys[9] and keys[9] ~= '' and keys[9] ~= index then
    if min_id then
      redis.call('XADD', keys[9], 'MINID', '~', min_id, '*', 'id', argv[1])
    else
      redis.call('XADD', keys[9], '*', 'id', argv[1])
    end
  end
  emit_enqueued(keys, argv)
  return {1, argv[1]}
end
