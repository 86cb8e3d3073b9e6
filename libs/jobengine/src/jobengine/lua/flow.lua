-- Write jobs with dependencies atomically: a flow (POST /v1/flows: all its nodes, or none of them) or one
-- job with depends_on (POST /v1/jobs). Each job is written by the same code as a submit (_enqueue); a job
-- with dependencies is written 'deferred' into RQ's DeferredJobRegistry (its enqueue KEYS[3] is that zset,
-- scored far ahead), then its edges (_dependents.lua: add_edge), then queued at once when they are all met,
-- or ended by its policy when a required one failed already. Nodes come in an order where a node's
-- dependencies inside the request come before it (the API sorts them; cycles are refused there).
-- ARGV[1] flow id ('' for one job)  ARGV[2] tenant ('' checks nothing)  ARGV[3] now (RQ timestamp)
-- ARGV[4] now (epoch s)  ARGV[5] NF, then NF values: the flow hash's fields (field, value, ...)
-- then: the tenant's backlog counter ('' none), its quota (a flow is checked whole: its nodes pass no
-- limits of their own), the flow's idempotency key ('' none), its TTL, the request's fingerprint, N nodes, and per node: nk, na, nd, on_dependency_failure (fail | cancel), nk enqueue
-- KEYS, na enqueue ARGV (enqueue.lua's: ARGV[1] is the job id), nd pairs (dependency id, success | any)
-- Returns {1, id (flow or job), status of each node...} when written (a repeat of a written call answers the
-- same, statuses as they are now), {5, dependency id} when a dependency outside the request does not exist
-- or is another tenant's (nothing written), {4, jobs held} at the tenant's quota, or enqueue.lua's answer
-- for one job (an idempotent repeat, a refusal: nothing written); {6, flow id, fingerprint} when the flow's
-- idempotency key names a flow written already (nothing written). (scripts.py: flow_args, parse_flow)
--!include _uncount
--!include _notify
--!include _end
--!include _enqueue
local pos = 1
local function one()
  pos = pos + 1
  return ARGV[pos - 1]
end
local function take(n)
  local t = {}
  for j = 1, n do t[j] = ARGV[pos + j - 1] end
  pos = pos + n
  return t
end

local flow_id, tenant, stamp, now = one(), one(), one(), one()
local ffields = take(tonumber(one()))
local counter, quota = one(), tonumber(one())
local idem, idem_ttl, fingerprint = one(), one(), one()
local n = tonumber(one())
local nodes, ours = {}, {}
for k = 1, n do
  local nk, na, nd = tonumber(one()), tonumber(one()), tonumber(one())
  local node = {policy = one()}
  node.keys, node.args, node.deps = take(nk), take(na), take(2 * nd)
  nodes[k] = node
  ours[node.args[1]] = true
end
local fk = K.flow .. flow_id

local function statuses(head)
  local out = {1, head}
  for k, node in ipairs(nodes) do out[k + 2] = redis.call('HGET', node.keys[1], 'status') or '' end
  return out
end

-- sent again after its reply was lost: written already
if flow_id ~= '' and redis.call('EXISTS', fk) == 1 then return statuses(flow_id) end
if flow_id == '' and redis.call('EXISTS', nodes[1].keys[1]) == 1 then return statuses(nodes[1].args[1]) end

if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing then
    local sep = string.find(existing, ' ', 1, true)
    return {6, string.sub(existing, 1, sep - 1), string.sub(existing, sep + 1)}
  end
end

-- checks: nothing is written yet
for _, node in ipairs(nodes) do
  for j = 1, #node.deps, 2 do
    local d = node.deps[j]
    if not ours[d] then
      local t = redis.call('HMGET', K.job .. d, 'status', 'jobengine_tenant')
      if not t[1] or (tenant ~= '' and t[2] ~= tenant) then return {5, d} end
    end
  end
end
if flow_id ~= '' and counter ~= '' and quota > 0 then
  local held = tonumber(redis.call('GET', counter) or '0')
  if held + n > quota then return {4, held} end
end

if idem ~= '' then redis.call('SET', idem, flow_id .. ' ' .. fingerprint, 'EX', idem_ttl) end
if flow_id ~= '' then
  redis.call('HSET', fk, 'nodes', n, 'ended', 0, 'state', 'running', unpack(ffields))
end
local ended = ended_jobs(tonumber(now))
for _, node in ipairs(nodes) do
  local id = node.args[1]
  local reply = enqueue(node.keys, node.args)
  if reply[1] ~= 1 then return reply end  -- one job's idempotent repeat or refusal (a flow's nodes have no limits)
  if flow_id ~= '' then redis.call('SADD', K.job .. id .. ':dependents', fk) end
  if #node.deps > 0 then
    redis.call('HSET', K.job .. id, 'jobengine_on_failure', node.policy)
    local failed = nil
    for j = 1, #node.deps, 2 do
      if add_edge(node.deps[j], id, node.deps[j + 1]) == 'failed' then failed = node.deps[j] end
    end
    settle_new(ended, id, failed, stamp)
  end
end
end_jobs_written(ended)
if flow_id ~= '' then return statuses(flow_id) end
return statuses(nodes[1].args[1])
