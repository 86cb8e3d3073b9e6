-- One step of one schedule, atomically: fire a tick (its job written by the same code as a submit, _enqueue),
-- skip ticks, fire a buffered tick (overlap=queue_one), mark it broken, or put it back in the due zset.
-- The caller computed the step from the hash it read: a version or next tick that differs now (another
-- process or a change got there first) refuses it, so each tick is acted on once (docs/guarantees.md).
-- KEYS[1] schedule hash  KEYS[2] its runs list  KEYS[3..] enqueue.lua's KEYS, all of them (the tick's idempotency
-- key as enqueue's KEYS[5]; none for a step that writes no job)
-- ARGV[1] step: fire | pending | skip | broken | rescore | trigger  ARGV[2] member '<tenant>:<name>'
-- ARGV[3] version read  ARGV[4] next read ('' none)  ARGV[5] the tick acted on (epoch s; trigger: now)
-- ARGV[6] next tick after the step ('' = the schedule ends)  ARGV[7] its due score (tick + jitter)
-- ARGV[8] overlap: allow | skip | queue_one  ARGV[9] now (epoch s)  ARGV[10] runs kept
-- ARGV[11] retry score: due again then after a refusal, while a buffered tick waits, or while broken
-- ARGV[12] skip: ticks skipped; broken: why  ARGV[13..] enqueue.lua's ARGV (fire, pending, trigger)
-- Returns {code, job id or number}: 1 written, 0 the tick's job existed already, 2 queue full, 4 tenant quota
-- (nothing advanced: due again at the retry score), 10 stale (nothing done), 11 skipped for overlap,
-- 12 skipped as missed, 13 buffered behind the running job, 14 buffered and still waiting, 15 broken,
-- 16 re-scored. (scripts.py: fire_keys, fire_args, parse_fire)
--!include _enqueue
local h, step, member, now = KEYS[1], ARGV[1], ARGV[2], ARGV[9]
local cur = redis.call('HMGET', h, 'version', 'next', 'state', 'last_job', 'pending')
local version, nxt, state, last, pending = cur[1], cur[2] or '', cur[3] or 'active', cur[4] or '', cur[5] or ''
if not version then
  return {10, ''}
end

local function record(tick, job, outcome, count)
  local run = {tick = tonumber(tick), at = tonumber(now), job_id = job, outcome = outcome}
  if count then run.count = tonumber(count) end
  redis.call('LPUSH', KEYS[2], cjson.encode(run))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[10]) - 1)
end

local function set_state(to)
  if state ~= to then
    redis.call('SREM', K.schedule_state .. state, member)
    redis.call('SADD', K.schedule_state .. to, member)
    redis.call('HSET', h, 'state', to)
    state = to
  end
end

-- the previous job has not ended (queued, waiting for a retry, running); an expired one has
local function running()
  if last == '' then return false end
  local s = redis.call('HGET', K.job .. last, 'status')
  return s == 'queued' or s == 'scheduled' or s == 'started' or s == 'deferred'
end

local function write_job()
  return enqueue({unpack(KEYS, 3)}, {unpack(ARGV, 13)})
end

-- next becomes ARGV[6]; the schedule is due again at its score, sooner while a buffered tick waits
local function advance()
  redis.call('HSET', h, 'next', ARGV[6], 'updated_at', now)
  if ARGV[6] == '' and pending == '' then
    redis.call('ZREM', K.due, member)
    set_state('ended')
    return
  end
  local score = tonumber(ARGV[7]) or tonumber(ARGV[11])
  if pending ~= '' and tonumber(ARGV[11]) < score then score = tonumber(ARGV[11]) end
  redis.call('ZADD', K.due, score, member)
end

if step == 'trigger' then  -- run now: no tick, no overlap policy, next untouched
  local reply = write_job()
  if reply[1] == 1 then
    redis.call('HSET', h, 'last_job', reply[2])
    redis.call('HINCRBY', h, 'fires', 1)
    record(ARGV[5], reply[2], 'triggered')
  end
  return reply
end

if version ~= ARGV[3] or nxt ~= ARGV[4] or (state ~= 'active' and state ~= 'broken') then
  return {10, ''}
end

if step == 'rescore' then
  redis.call('ZADD', K.due, ARGV[7], member)
  return {16, ''}
end

if step == 'broken' then
  if state ~= 'broken' then
    set_state('broken')
    redis.call('HSET', h, 'error', ARGV[12])
    record(ARGV[5], '', 'broken')
  end
  redis.call('ZADD', K.due, ARGV[11], member)
  return {15, ''}
end

if step == 'skip' then
  redis.call('HINCRBY', h, 'skipped', ARGV[12])
  record(ARGV[5], '', 'skipped_missed', ARGV[12])
  advance()
  return {12, ARGV[12]}
end

if step == 'pending' then
  if pending ~= ARGV[5] then
    return {10, ''}
  end
  if running() then
    local score = tonumber(ARGV[11])
    if ARGV[6] ~= '' and tonumber(ARGV[7]) < score then score = tonumber(ARGV[7]) end
    redis.call('ZADD', K.due, score, member)
    return {14, ''}
  end
elseif step == 'fire' then
  if ARGV[8] ~= 'allow' and running() then
    if ARGV[8] == 'queue_one' and pending == '' then
      pending = ARGV[5]
      redis.call('HSET', h, 'pending', pending)
      record(ARGV[5], '', 'buffered')
      advance()
      return {13, ''}
    end
    redis.call('HINCRBY', h, 'skipped', 1)
    record(ARGV[5], '', 'skipped_overlap')
    advance()
    return {11, ''}
  end
else
  return redis.error_reply('unknown step ' .. step)
end

local reply = write_job()
local code = reply[1]
if code == 2 or code == 4 then  -- backpressure: nothing written, nothing advanced; the tick is tried again
  redis.call('HINCRBY', h, 'refused', 1)
  redis.call('ZADD', K.due, ARGV[11], member)
  return reply
end
if code == 1 or code == 0 then  -- 0: this tick's job exists (its key outlived a change of next): not twice
  redis.call('HSET', h, 'last_job', reply[2], 'last_tick', ARGV[5], 'error', '')
  if code == 1 then
    redis.call('HINCRBY', h, 'fires', 1)
    record(ARGV[5], reply[2], 'enqueued')
  end
  set_state('active')
  if step == 'pending' then
    pending = ''
    redis.call('HSET', h, 'pending', '')
  end
  advance()
end
return {code, reply[2]}
