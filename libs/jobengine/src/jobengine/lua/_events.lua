-- Job events (docs/guarantees.md, "Events"): scripts.py puts this before every script, so each state change
-- is one line where it happens. One bounded stream per tenant, jobengine:events:<tenant>, entries
-- {t: type, j: job id, k: job type (RQ's description, 'add()'), q: queue, s: status, p: progress JSON}; the
-- time is the entry id's. The API's SSE and webhook loops read them (jobengine_api/events.py, webhooks/).
-- A job without a tenant (written by the Producer or stock RQ) has no stream: nothing is written for it.
-- K.events_max_len: JOBENGINE_EVENTS_MAX_LEN, put in as the scripts load; '~' trims whole nodes only.

local function emit(tenant, id, etype, q, status, jtype, progress)
  if not tenant then return end
  if progress then
    redis.call('XADD', K.events .. tenant, 'MAXLEN', '~', K.events_max_len, '*', 't', etype, 'j', id,
               'k', jtype or '', 'q', q, 's', status, 'p', progress)
  else
    redis.call('XADD', K.events .. tenant, 'MAXLEN', '~', K.events_max_len, '*', 't', etype, 'j', id,
               'k', jtype or '', 'q', q, 's', status)
  end
end

-- The same for a job whose tenant and type the caller has not read (one HMGET).
local function emit_job(jk, id, etype, q, status)
  local f = redis.call('HMGET', jk, 'jobengine_tenant', 'description')
  if f[1] then emit(f[1], id, etype, q, status, f[2]) end
end

-- enqueue.lua's job (its keys and argv): the tenant is its listing index's name (keys[8]), the type a field.
local function emit_enqueued(keys, argv)
  local index = keys[8]
  if not index or index == '' then return end
  local jtype = ''
  for i = 11, #argv, 2 do
    if argv[i] == 'description' then jtype = argv[i + 1] break end
  end
  emit(string.sub(index, #K.index + 2), argv[1], 'job.queued', string.sub(argv[6], #K.queue + 1),
       tonumber(argv[2]) > 0 and 'scheduled' or 'queued', jtype)
end

local END_EVENT = {finished = 'job.finished', failed = 'job.failed', canceled = 'job.canceled'}
