-- Job events (docs/guarantees.md, "Events and webhooks"): scripts.py puts this before the scripts that change a
-- job's state, so each change is one line where it happens. One bounded stream per tenant,
-- jobengine:events:<tenant>. An entry holds the events of one script call of one tenant, one a line, in field
-- e: '<type> <job id> <queue> <status> <job type>' (the worker's claim and complete scripts write one entry a
-- call for a whole batch: one XADD, not one a job), and p = progress JSON for a job.progress entry; its time is
-- the entry id's; event n of entry <ms>-<seq> has the id <ms>-<seq>-<n>. The job type (RQ's description,
-- 'add()') is written where the script has it at hand (enqueue, progress, operators' requeues), not where it
-- would cost a hash field read a job (claim, complete): the API fills it in (jobengine_api/events.py: JobTypes).
-- A job without a tenant (written by the Producer or stock RQ) has no stream: nothing is written for it.
-- K.events_max_len: JOBENGINE_EVENTS_MAX_LEN entries, put in as the scripts load; '~' trims whole nodes only.

local ev_batch = nil  -- tenant -> its events of this call, while a script gathers them (events_batched)
local ev_listened = {}  -- tenant -> whether its events are written (its K.listened key exists), read once a call

-- A tenant's events are written only while someone listens (keys.events_listened: webhooks, a callback secret,
-- an event stream open lately): a tenant nobody listens to costs one EXISTS a script call, not an XADD.
local function listened(tenant)
  local on = ev_listened[tenant]
  if on == nil then
    on = redis.call('EXISTS', K.listened .. tenant) == 1
    ev_listened[tenant] = on
  end
  return on
end

local function emit(tenant, id, etype, q, status, jtype, progress)
  if not tenant or not listened(tenant) then return end
  local e = etype .. ' ' .. id .. ' ' .. q .. ' ' .. status .. ' ' .. (jtype or '')
  if progress then
    redis.call('XADD', K.events .. tenant, 'MAXLEN', '~', K.events_max_len, '*', 'e', e, 'p', progress)
  elseif ev_batch then
    local list = ev_batch[tenant]
    if list then list[#list + 1] = e else ev_batch[tenant] = {e} end
  else
    redis.call('XADD', K.events .. tenant, 'MAXLEN', '~', K.events_max_len, '*', 'e', e)
  end
end

-- From here on, this call's events are gathered, and written by events_written (one entry a tenant).
local function events_batched()
  ev_batch = {}
end

local function events_written()
  for tenant, list in pairs(ev_batch) do
    redis.call('XADD', K.events .. tenant, 'MAXLEN', '~', K.events_max_len, '*', 'e', table.concat(list, '\n'))
  end
  ev_batch = nil
end

-- The same for a job whose tenant and type the caller has not read (one HMGET).
local function emit_job(jk, id, etype, q, status)
  local f = redis.call('HMGET', jk, 'jobengine_tenant', 'description')
  if f[1] then emit(f[1], id, etype, q, status, f[2]) end
end

-- enqueue.lua's job (its keys and argv): tenant and type are fields of the hash it writes (argv[11...], pairs).
local function emit_enqueued(keys, argv)
  local tenant, jtype = nil, ''
  for i = 11, #argv, 2 do
    local name = argv[i]
    if name == 'jobengine_tenant' then tenant = argv[i + 1] elseif name == 'description' then jtype = argv[i + 1] end
  end
  if not tenant or not listened(tenant) then return end
  local status = 'queued'
  if string.sub(keys[3], 1, #K.deferred) == K.deferred then  -- flow.lua's job with dependencies
    status = 'deferred'
  elseif tonumber(argv[2]) > 0 then
    status = 'scheduled'
  end
  local etype = 'job.queued'  -- a delayed job too (status scheduled)
  if status == 'deferred' then etype = 'job.deferred' end
  emit(tenant, argv[1], etype, string.sub(argv[6], #K.queue + 1), status, jtype)
end

-- end_job's event: its tenant as the caller read it (false: the job has none), or nil (not read: one HMGET here).
local function emit_end(jk, id, status, q, tenant)
  if tenant == nil then
    emit_job(jk, id, 'job.' .. status, q, status)
  elseif tenant then
    emit(tenant, id, 'job.' .. status, q, status)
  end
end
