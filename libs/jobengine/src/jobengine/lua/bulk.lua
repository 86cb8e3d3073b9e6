-- One step of a bulk operation (POST /v1/operations): at most ARGV[5] registry entries examined, under the
-- operation's lease, its cursor and counts read from and written to its hash (jobengine:op:<id>) in the same
-- call. A step re-sent after its reply was lost reads the cursor the first run wrote and does the next
-- step: no entry is examined twice by one run of the operation, whoever runs it (idempotent per cursor).
-- ARGV[1] operation id  ARGV[2] lease owner (an API process's token)  ARGV[3] now (epoch s)
-- ARGV[4] now (RQ timestamp)  ARGV[5] most entries to examine  ARGV[6] lease seconds  ARGV[7] cancel text
-- (base64 zlib)
-- The hash holds: action (retry | cancel | delete), sources (registry keys, comma-separated, walked in
-- order), si (the source walked, from 1), the cursor (a sorted set: cur_member, cur_score, the last entry
-- examined and left in it; a queue list: offset, entries examined from its tail), the filter (f_type,
-- f_tenant, f_after, f_before: created_at bounds, RQ timestamps compared as strings), begun (its start:
-- jobs that ended (retry, delete) or were submitted (cancel) after it are left alone), state, counts.
-- Each job matched changes as one job's script would change it: retry as requeue.lua (_requeue), cancel as
-- cancel.lua (_cancel; a queued id stays in its list, dropped by the claim script), delete as expiry would.
-- Registry entries whose job expired are removed on the way (RQ's registry cleanup), counted as skipped.
-- Returns {state, examined, matched}: state running | done | canceled | leased (another process holds the
-- lease: nothing done) | missing.
--!include _uncount
--!include _notify
--!include _end
--!include _cancel
--!include _requeue
local ok = K.op .. ARGV[1]
local o = redis.call('HMGET', ok, 'state', 'lease_owner', 'lease_until', 'action', 'sources', 'si', 'cur_member',
                    'cur_score', 'offset', 'f_type', 'f_tenant', 'f_after', 'f_before', 'begun')
if not o[1] then return {'missing', 0, 0} end
if o[1] == 'done' or o[1] == 'canceled' then return {o[1], 0, 0} end
local now, owner, stamp = tonumber(ARGV[3]), ARGV[2], ARGV[4]
if o[2] and o[2] ~= '' and o[2] ~= owner and tonumber(o[3] or '0') > now then return {'leased', 0, 0} end
redis.call('HSET', ok, 'state', 'running', 'lease_owner', owner, 'lease_until', tostring(now + tonumber(ARGV[6])),
           'updated_at', stamp)
local action, limit = o[4], tonumber(ARGV[5])
local sources = {}
for s in string.gmatch(o[5] or '', '[^,]+') do sources[#sources + 1] = s end
local si = tonumber(o[6]) or 1
local f_type, f_tenant, f_after, f_before, begun = o[10] or '', o[11] or '', o[12] or '', o[13] or '', o[14] or ''

local ended = ended_jobs(now)
local woken = {}
local examined, matched, skipped = 0, 0, 0

-- FIELDS: REQUEUE_FIELDS (1-6), then 7 meta, 8 created_at, 9 ended_at, 10 failure_ttl
local function fields(jk)
  return redis.call('HMGET', jk, 'status', 'origin', 'retry_intervals', 'jobengine_tenant', 'jobengine_backlog',
                    'jobengine_op', 'meta', 'created_at', 'ended_at', 'failure_ttl')
end

local function wanted(f)
  if f_tenant ~= '' and f[4] ~= f_tenant then return false end
  local created = f[8] or ''
  if f_after ~= '' and created < f_after then return false end
  if f_before ~= '' and created >= f_before then return false end
  if f_type ~= '' then
    local okd, meta = pcall(cjson.decode, f[7] or '')
    if not okd or type(meta) ~= 'table' or meta['type'] ~= f_type then return false end
  end
  return true
end

-- One entry of a registry (a job id); kind: the registry's own status (failed, finished, canceled,
-- scheduled, queued). Returns whether the entry left the registry (its cursor must not count it).
local function visit(id, kind, registry)
  local jk = K.job .. id
  local f = fields(jk)
  if not f[1] then  -- expired: a stale entry (a queue list's is dropped by the claim script)
    skipped = skipped + 1
    if kind == 'queued' then return false end
    redis.call('ZREM', registry, id)
    return true
  end
  if f[1] ~= kind or not wanted(f) then
    skipped = skipped + 1
    return false
  end
  local q = f[2]
  if action == 'retry' then
    if begun ~= '' and (f[9] or '') > begun then skipped = skipped + 1; return false end
    requeue_job(ended, id, jk, f, stamp, 'bulk ' .. ARGV[1] .. ' queued')
    woken[q] = true
  elseif action == 'cancel' then
    if begun ~= '' and (f[8] or '') > begun then skipped = skipped + 1; return false end
    cancel_waiting(ended, jk, id, q, f[1], stamp, ARGV[7], f[10], 'bulk ' .. ARGV[1] .. ' canceled', false)
  else  -- delete: as if its TTL ran out now
    if begun ~= '' and (f[9] or '') > begun then skipped = skipped + 1; return false end
    redis.call('DEL', jk, K.results .. id)
    redis.call('ZREM', registry, id)
  end
  matched = matched + 1
  return kind ~= 'queued'
end

local state = 'running'
local src = sources[si]
if src then
  local exhausted, pos, size
  if string.sub(src, 1, #K.queue) == K.queue then
    -- a queue list, walked from its tail: submits push at the tail and shift it (entries seen again, left
    -- alone as submitted after `begun`); workers pop at the head, which moves nothing not yet seen
    local offset = tonumber(o[9]) or 0
    local ids = redis.call('LRANGE', src, -(offset + limit), -(offset + 1))
    for i = #ids, 1, -1 do
      visit(ids[i], 'queued', src)
      examined = examined + 1
    end
    offset = offset + #ids
    redis.call('HSET', ok, 'offset', offset)
    exhausted = #ids < limit
    pos, size = offset, redis.call('LLEN', src)
  else
    -- a sorted set, walked in order: the entries before the cursor are those examined and left in it
    local kind = 'scheduled'
    for _, pk in ipairs({{K.failed, 'failed'}, {K.finished, 'finished'}, {K.canceled, 'canceled'}}) do
      if string.sub(src, 1, #pk[1]) == pk[1] then kind = pk[2] end
    end
    local start = 0
    if o[7] then
      if redis.call('ZSCORE', src, o[7]) == o[8] then
        start = redis.call('ZRANK', src, o[7]) + 1
      else  -- left the set (or moved) since: from the first entry of its score (seen ones are left alone again)
        start = redis.call('ZCOUNT', src, '-inf', '(' .. o[8])
      end
    end
    local page = redis.call('ZRANGE', src, start, start + limit - 1, 'WITHSCORES')
    local kept_member, kept_score
    for i = 1, #page, 2 do
      if not visit(page[i], kind, src) then kept_member, kept_score = page[i], page[i + 1] end
      examined = examined + 1
    end
    if kept_member then redis.call('HSET', ok, 'cur_member', kept_member, 'cur_score', kept_score) end
    exhausted = #page < 2 * limit
    size = redis.call('ZCARD', src)
    pos = size
    if kept_member then pos = redis.call('ZRANK', src, kept_member) + 1 elseif not o[7] then pos = 0 end
  end
  if exhausted then
    si = si + 1
    redis.call('HSET', ok, 'si', si, 'offset', 0, 'pos', 0, 'size', 0)
    redis.call('HDEL', ok, 'cur_member', 'cur_score')
  else
    redis.call('HSET', ok, 'pos', pos, 'size', size)
  end
end
if si > #sources then
  state = 'done'
  redis.call('HSET', ok, 'state', 'done', 'ended_at', stamp, 'lease_owner', '', 'lease_until', '0')
  redis.call('SREM', K.ops_active, ARGV[1])
end
redis.call('HINCRBY', ok, 'examined', examined)
redis.call('HINCRBY', ok, 'matched', matched)
redis.call('HINCRBY', ok, 'skipped', skipped)
end_jobs_written(ended)
for q in pairs(woken) do notify(q) end
return {state, examined, matched}
