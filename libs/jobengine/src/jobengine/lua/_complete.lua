-- Included by complete.lua and complete_claim.lua (scripts.py inlines it where they say --!include);
-- needs _uncount, _notify and _end included before it.
-- complete_job records one claimed job's outcome: now (epoch s), stamp (RQ timestamp), worker name, job id,
-- queue, execution id, outcome, value, arg as described in complete.lua; returns the job's new status.
-- complete_from records the outcomes given in ARGV from index `first` on, 6 arguments each. It writes the
-- registries once a key, not once a job: first the ZREMs from the StartedJobRegistry, then the jobs, whose
-- ZADDs to the finished, failed or canceled registry end_job gathers (see _end.lua). The ZREM comes first
-- on purpose: Redis refuses a script over maxmemory (noeviction) only if its first write is one that can
-- grow memory, so outcomes are still recorded when Redis is full (the API's memory guard keeps the room).
-- Safe to run twice (a call re-sent after its reply was lost): an outcome recorded already under this
-- execution id ('done:<exec>' in jobengine_claim) changes nothing, and is answered with the job's status.

local function failure_ttl(jk)
  return redis.call('HGET', jk, 'failure_ttl') or '604800'
end

local function complete_job(ended, now, stamp, worker, id, q, exec, outcome, value, arg)
  local jk = K.job .. id
  local f = redis.call('HMGET', jk, 'status', 'jobengine_claim', 'jobengine_cancel', 'jobengine_backlog',
                       'jobengine_tenant')
  if not f[1] then return 'gone' end
  local done = 'done:' .. exec
  if f[2] == done then return f[1] end  -- a repeat: recorded by the first run
  if f[2] ~= exec then
    -- Our claim was recovered while we ran: keep a result rather than run the job again.
    if outcome == 'release' or outcome == 'requeue' or outcome == 'crash' then return 'lost' end
    if f[1] == 'queued' then
      redis.call('LREM', K.queue .. q, 1, id)
    elseif f[1] == 'scheduled' then
      redis.call('ZREM', K.scheduled .. q, id)
    else
      return 'lost'
    end
  end
  if outcome == 'crash' then  -- its executor died: requeued until it has done so more than `arg` times
    if redis.call('HINCRBY', jk, 'jobengine_crashes', 1) > tonumber(arg) then
      outcome, arg = 'failed', failure_ttl(jk)
    else
      outcome = 'requeue'
    end
  end
  if f[3] and (outcome == 'retry' or outcome == 'requeue' or outcome == 'release') then
    -- a cancel asked for while it ran wins over running it again; kept for its failure TTL
    outcome, arg = 'canceled', failure_ttl(jk)
  end

  if outcome == 'finished' or outcome == 'failed' or outcome == 'canceled' then
    end_job(ended, jk, id, q, outcome, stamp, worker, exec, done, value, arg, f[4], f[5])
    return outcome
  elseif outcome == 'retry' then
    local run_at = tonumber(arg)
    redis.call('HINCRBY', jk, 'retries_left', -1)
    redis.call('HINCRBY', jk, 'number_of_retries', 1)
    redis.call('XADD', K.results .. id, 'MAXLEN', '~', '10', '*', 'type', '2', 'worker_name', worker,
               'exc_string', value, 'execution_id', exec)
    if run_at > now then
      redis.call('HSET', jk, 'status', 'scheduled', 'worker_name', '', 'jobengine_claim', done)
      redis.call('ZADD', K.scheduled .. q, run_at, id)
      emit(f[5], id, 'job.retrying', q, 'scheduled')
      return 'scheduled'
    end
    redis.call('HSET', jk, 'status', 'queued', 'worker_name', '', 'jobengine_claim', done, 'enqueued_at', stamp)
    redis.call('RPUSH', K.queue .. q, id)
    notify(q)
    emit(f[5], id, 'job.retrying', q, 'queued')
    return 'queued'
  elseif outcome == 'requeue' or outcome == 'release' then
    if outcome == 'release' then redis.call('HINCRBY', jk, 'jobengine_attempts', -1) end
    redis.call('HSET', jk, 'status', 'queued', 'worker_name', '', 'started_at', '', 'jobengine_claim', done)
    redis.call('LPUSH', K.queue .. q, id)
    notify(q)
    emit(f[5], id, 'job.queued', q, 'queued')
    return 'queued'
  end
  return 'unknown outcome ' .. outcome
end

local function complete_from(now, stamp, worker, first)
  local zrem, statuses = {}, {}
  local ended = ended_jobs(now)
  for i = first, #ARGV, 6 do add(zrem, K.wip .. ARGV[i + 1], ARGV[i] .. ':' .. ARGV[i + 2]) end
  for key, members in pairs(zrem) do redis.call('ZREM', key, unpack(members)) end
  for i = first, #ARGV, 6 do
    statuses[#statuses + 1] = complete_job(ended, now, stamp, worker, ARGV[i], ARGV[i + 1], ARGV[i + 2],
                                           ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
  end
  end_jobs_written(ended)
  return statuses
end
