-- Included by _end.lua (at its end: it needs end_job, add and notify), so every script that ends a job has
-- it; requeue.lua includes _end for revive_dependents. Workflows (docs/guarantees.md, "Workflows").
-- The data, in RQ's model where it fits: rq:job:<id>:dependents (set: the jobs that depend on <id>, and for a
-- node of a flow its flow's key), rq:job:<id>:dependencies (set: every id <id> depends on), the hash field
-- dependency_ids (JSON list, as RQ writes it), RQ's DeferredJobRegistry rq:deferred:<queue> (zset) and status
-- 'deferred'. Ours: jobengine:pending:<id>, a hash {dependency id: 'success' | 'any'} of the dependencies
-- not yet met (HDEL answers 1 once: an edge is met once, whatever runs twice), the job's jobengine_pending
-- field (its size, for reading), jobengine_on_failure ('fail' | 'cancel': what a required dependency that
-- ended failed or canceled does to it) and jobengine_ended_by (the dependency whose failure ended it, so a
-- retry of that one revives it).
-- end_job (_end.lua) calls release_dependents only for a job whose dependents set exists: one EXISTS is all a
-- job without dependents pays.

local DEFERRED_SCORE = '9999999999'  -- RQ scores a deferred job by its TTL's end: '+inf' in effect (none)
local releasing = nil  -- the work list of the release running (end_job re-enters release_dependents)

-- A node of a flow ended (status) or left its end (delta -1): the flow's counts, and its end when it was the
-- last node (flows by outcome: K.flow_outcomes).
local function flow_count(fk, status, delta)
  if redis.call('EXISTS', fk) == 0 then return end  -- the flow ended and expired: nothing to count
  local ended = redis.call('HINCRBY', fk, 'ended', delta)
  redis.call('HINCRBY', fk, 'n_' .. status, delta)
  if delta < 0 then
    if redis.call('HGET', fk, 'state') ~= 'running' then
      redis.call('HSET', fk, 'state', 'running', 'ended_at', '')
      redis.call('PERSIST', fk)
    end
    return
  end
  local f = redis.call('HMGET', fk, 'nodes', 'n_failed', 'n_canceled', 'ttl')
  if ended < tonumber(f[1]) then return end
  local outcome = 'succeeded'
  if tonumber(f[2] or '0') > 0 then outcome = 'failed' elseif tonumber(f[3] or '0') > 0 then outcome = 'canceled' end
  redis.call('HSET', fk, 'state', outcome, 'ended_at', tostring(redis.call('TIME')[1]))
  redis.call('EXPIRE', fk, f[4] or '604800')
  redis.call('HINCRBY', K.flow_outcomes, outcome, 1)
  redis.call('PUBLISH', K.done .. fk, outcome)
end

-- The edges of a deferred job (its pending hash and RQ's dependencies set) live as long as it: kept while it
-- waits, expired with it once it ends by a dependency or a cancel (ttl), dropped once it is queued.
local function keep_edges(child, ttl)
  local pk, dk = K.pending .. child, K.job .. child .. ':dependencies'
  if ttl then
    redis.call('EXPIRE', pk, ttl)
    redis.call('EXPIRE', dk, ttl)
  else
    redis.call('PERSIST', pk)
    redis.call('PERSIST', dk)
  end
end

local function is_flow(member)
  return string.sub(member, 1, #K.flow) == K.flow
end

-- A deferred job whose dependencies are all met goes to its queue.
local function make_ready(id, jk, q, stamp)
  redis.call('ZREM', K.deferred .. q, id)
  redis.call('DEL', K.job .. id .. ':dependencies')  -- all met (the dependency_ids field keeps the list)
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', stamp, 'jobengine_pending', '0')
  redis.call('RPUSH', K.queue .. q, id)
  notify(q)
  emit_job(jk, id, 'job.queued', q, 'queued')
end

-- Dependency `dep` ended with `status`: what that does to the deferred job `child`.
local function settle(ended, dep, status, child, stamp)
  local ck = K.job .. child
  local f = redis.call('HMGET', ck, 'status', 'origin', 'jobengine_on_failure', 'failure_ttl')
  if f[1] ~= 'deferred' then return end  -- ended or released already (a cancel, a dependency's retry)
  local pk = K.pending .. child
  local on = redis.call('HGET', pk, dep)
  if not on then return end  -- this edge was met already
  if status == 'finished' or on == 'any' then
    redis.call('HDEL', pk, dep)
    local left = redis.call('HLEN', pk)
    redis.call('HSET', ck, 'jobengine_pending', left)
    if left == 0 then make_ready(child, ck, f[2], stamp) end
  else
    -- a required dependency failed or was canceled: the child ends by its policy, still waiting on `dep` (a
    -- retry of `dep` revives it: revive_dependents)
    local to = 'failed'
    if f[3] == 'cancel' then to = 'canceled' end
    redis.call('ZREM', K.deferred .. f[2], child)
    redis.call('HSET', ck, 'jobengine_ended_by', dep)
    end_job(ended, ck, child, f[2], to, stamp, '', '', '', K.dependency_failed, f[4] or '604800', nil)
    keep_edges(child, f[4] or '604800')
  end
end

-- Job `id` ended with `status`: each of its dependents settled, each dependent that this ends in turn
-- handled by the same loop (a work list, not recursion: a chain of any length cascades), its flow counted.
release_dependents = function(ended, id, status, stamp)
  if releasing then
    releasing[#releasing + 1] = {id, status}
    return
  end
  local work = {{id, status}}
  releasing = work
  local i = 1
  while i <= #work do
    local dep, st = work[i][1], work[i][2]
    i = i + 1
    local dk = K.job .. dep .. ':dependents'
    for _, member in ipairs(redis.call('SMEMBERS', dk)) do
      if is_flow(member) then flow_count(member, st, 1) else settle(ended, dep, st, member, stamp) end
    end
    local ttl = redis.call('TTL', K.job .. dep)  -- kept as long as the job (a retry revives through it)
    if ttl > 0 then redis.call('EXPIRE', dk, ttl) end
  end
  releasing = nil
end

-- A dependency written with a dependent: the edge dep -> child with policy `on` ('success' | 'any'). Returns
-- whether it is met now, false when unmet, or 'failed' when dep ended failed or canceled and is required.
local function add_edge(dep, child, on)
  redis.call('SADD', K.job .. dep .. ':dependents', child)
  redis.call('SADD', K.job .. child .. ':dependencies', dep)
  local st = redis.call('HGET', K.job .. dep, 'status')
  if st == 'finished' then return true end
  if st == 'failed' or st == 'canceled' or st == 'stopped' then
    if on == 'any' then return true end
    redis.call('PERSIST', K.job .. dep .. ':dependents')  -- a retry of dep must find its dependents
    return 'failed'
  end
  redis.call('PERSIST', K.job .. dep .. ':dependents')
  redis.call('HSET', K.pending .. child, dep, on)
  return false
end

-- After a deferred job and all its edges are written (add_edge): queue it when nothing is pending, end it
-- by its policy when a required dependency (failed_dep) has failed already.
local function settle_new(ended, child, failed_dep, stamp)
  local ck = K.job .. child
  if failed_dep then
    redis.call('HSET', K.pending .. child, failed_dep, 'success')
    redis.call('HSET', ck, 'jobengine_pending', redis.call('HLEN', K.pending .. child))
    settle(ended, failed_dep, 'failed', child, stamp)
    return redis.call('HGET', ck, 'status')
  end
  local left = redis.call('HLEN', K.pending .. child)
  redis.call('HSET', ck, 'jobengine_pending', left)
  if left == 0 then
    make_ready(child, ck, redis.call('HGET', ck, 'origin'), stamp)
    return 'queued'
  end
  return 'deferred'
end

-- Whether each pending dependency of the deferred job `child` (but `except`) is met by now: one that ended
-- while `child` was ended (it was not deferred then) is met now, or ends it again when it failed and is
-- required. One whose hash is gone ended and expired (a job's hash only expires once ended), how is unknown:
-- met for an `any` edge, failed for a required one (never run on an outcome nobody can read; never wait
-- forever either). Returns false when that ended it again.
local function recheck(ended, child, except, stamp)
  local pk = K.pending .. child
  local pend = redis.call('HGETALL', pk)
  local failing = nil
  for j = 1, #pend, 2 do
    local dep, on = pend[j], pend[j + 1]
    if dep ~= except then
      local st = redis.call('HGET', K.job .. dep, 'status') or 'failed'
      if st == 'finished' or ((st == 'failed' or st == 'canceled' or st == 'stopped') and on == 'any') then
        redis.call('HDEL', pk, dep)
      elseif st == 'failed' or st == 'canceled' or st == 'stopped' then
        failing = dep
      end
    end
  end
  local left = redis.call('HLEN', pk)
  redis.call('HSET', K.job .. child, 'jobengine_pending', left)
  if failing then
    settle(ended, failing, 'failed', child, stamp)
    return false
  end
  if left == 0 then make_ready(child, K.job .. child, redis.call('HGET', K.job .. child, 'origin'), stamp) end
  return true
end

-- Job `id` leaves its end from status `old` (a retry): its flow counts it as not ended.
local function reopen(id, old)
  local dk = K.job .. id .. ':dependents'
  if redis.call('EXISTS', dk) == 0 then return false end
  redis.call('PERSIST', dk)
  for _, member in ipairs(redis.call('SMEMBERS', dk)) do
    if is_flow(member) then flow_count(member, old, -1) end
  end
  return true
end

-- Job `id` left its end (a retry: requeue_job, after reopen): each dependent that its failure ended goes
-- back to deferred, in turn (a work list) with the dependents their own end ended.
local function revive_dependents(ended, id, stamp)
  local work = {id}
  local i = 1
  while i <= #work do
    local dep = work[i]
    i = i + 1
    for _, member in ipairs(redis.call('SMEMBERS', K.job .. dep .. ':dependents')) do
      if not is_flow(member) then
        local ck = K.job .. member
        local f = redis.call('HMGET', ck, 'status', 'jobengine_ended_by', 'origin', 'jobengine_backlog')
        if f[2] == dep and (f[1] == 'failed' or f[1] == 'canceled') then
          local q = f[3]
          reopen(member, f[1])
          redis.call('ZREM', K.failed .. q, member)
          redis.call('ZREM', K.canceled .. q, member)
          redis.call('HSET', ck, 'status', 'deferred', 'ended_at', '')
          redis.call('HDEL', ck, 'jobengine_ended_by', 'jobengine_cancel')
          redis.call('PERSIST', ck)
          redis.call('PERSIST', K.results .. member)
          if f[4] and string.sub(f[4], 1, 1) == '-' then  -- counted against its tenant's quota again
            local counter = string.sub(f[4], 2)
            redis.call('INCR', counter)
            redis.call('HSET', ck, 'jobengine_backlog', counter)
          end
          redis.call('ZADD', K.deferred .. q, DEFERRED_SCORE, member)
          keep_edges(member, nil)
          emit_job(ck, member, 'job.deferred', q, 'deferred')
          if recheck(ended, member, dep, stamp) then work[#work + 1] = member end
        end
      end
    end
  end
end

-- A job retried (requeue_job) whose own dependencies are not all met waits for them: deferred, not queued
-- (or ends again at once when a required one is failed). Returns whether it was not queued.
local function deferred_again(ended, id, jk, q, stamp)
  if redis.call('EXISTS', K.pending .. id) == 0 then return false end
  redis.call('HSET', jk, 'status', 'deferred')
  redis.call('HDEL', jk, 'jobengine_ended_by')
  redis.call('ZADD', K.deferred .. q, DEFERRED_SCORE, id)
  keep_edges(id, nil)
  recheck(ended, id, nil, stamp)
  return true
end
