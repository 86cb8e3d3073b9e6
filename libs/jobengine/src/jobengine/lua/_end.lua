-- Included by complete.lua, complete_claim.lua, recover.lua and cancel.lua, after _uncount (scripts.py inlines it where
-- they say --!include): ending a job, written once for every script that ends jobs.

local release_dependents  -- _dependents.lua, included at the end (end_job and it call each other)

-- Append values to the argument list lists[key] (created on first use).
local function add(lists, key, ...)
  local args = lists[key]
  if not args then
    args = {}
    lists[key] = args
  end
  for _, v in ipairs({...}) do args[#args + 1] = v end
end

-- `ended` gathers the registry ZADDs of a script's ended jobs, to write once a registry (end_jobs_written),
-- scored by when they expire: whole seconds, formatted once a TTL (Redis formats a Lua number with sprintf,
-- which was the largest single cost of these scripts when done for every job).
local function ended_jobs(now)
  return {zadd = {}, at = {}, now = math.floor(now)}
end

local function expires_at(ended, ttl)
  local at = ended.at[ttl]
  if not at then
    at = tostring(ended.now + tonumber(ttl))
    ended.at[ttl] = at
  end
  return at
end

local RESULT_TYPE = {finished = '1', failed = '2', canceled = '3'}
local RESULT_FIELD = {finished = 'return_value', failed = 'exc_string', canceled = 'exc_string'}
local REGISTRY = {finished = K.finished, failed = K.failed, canceled = K.canceled}

-- A job reaches a terminal status (finished, failed or canceled): its hash, a result entry in RQ's results
-- stream (value: base64 return value, or base64 zlib exception text), both kept `ttl` seconds, its registry
-- (in `ended`), its tenant's backlog count (counter: its jobengine_backlog field if read already, see
-- _uncount) and the done channel. jk: its hash's key; claim: what its jobengine_claim field becomes.
-- tenant: its jobengine_tenant field if read already (false: none; nil: not read), for its event.
local function end_job(ended, jk, id, q, status, stamp, worker, exec, claim, value, ttl, counter, tenant)
  local results = K.results .. id
  redis.call('HSET', jk, 'status', status, 'ended_at', stamp, 'jobengine_claim', claim)
  redis.call('XADD', results, 'MAXLEN', '~', '10', '*', 'type', RESULT_TYPE[status], 'worker_name', worker,
             RESULT_FIELD[status], value, 'execution_id', exec)
  redis.call('EXPIRE', jk, ttl)
  redis.call('EXPIRE', results, ttl)
  add(ended.zadd, REGISTRY[status] .. q, expires_at(ended, ttl), id)
  uncount(jk, counter)
  redis.call('PUBLISH', K.done .. id, status)
  emit_end(jk, id, status, q, tenant)
  if redis.call('EXISTS', K.job .. id .. ':dependents') == 1 then release_dependents(ended, id, status, stamp) end
end

local function end_jobs_written(ended)
  for key, args in pairs(ended.zadd) do redis.call('ZADD', key, unpack(args)) end
end

--!include _dependents
