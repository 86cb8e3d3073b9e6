-- Find claims that were not renewed in time (their worker died: SIGKILL, OOM, node loss), on every queue,
-- and requeue those jobs at the front, or fail them once they have been recovered too often.
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] max recoveries  ARGV[4] max entries per queue
-- ARGV[5] failure text (base64 zlib)  ARGV[6] cancel text (base64 zlib)
-- Returns a flat list: job id, queue, new status, ... Safe to run twice: a recovered claim leaves the
-- StartedJobRegistry, so a repeat finds nothing more. (built and parsed by scripts.py: recover_args,
-- parse_recover)
--!include _uncount
--!include _notify
--!include _end
local out = {}
local ended = ended_jobs(tonumber(ARGV[1]))
local text = {failed = ARGV[5], canceled = ARGV[6]}
for _, qkey in ipairs(redis.call('SMEMBERS', K.queues)) do
  local q = string.sub(qkey, #K.queue + 1)
  local wip = K.wip .. q
  local members = redis.call('ZRANGEBYSCORE', wip, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
  for _, m in ipairs(members) do
    redis.call('ZREM', wip, m)
    local sep = string.find(m, ':', 1, true)
    local id, exec = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    local jk = K.job .. id
    local f = redis.call('HMGET', jk, 'status', 'jobengine_claim', 'jobengine_cancel', 'failure_ttl')
    if f[1] == 'started' and f[2] == exec then
      local status
      if f[3] then
        status = 'canceled'
      elseif redis.call('HINCRBY', jk, 'jobengine_recoveries', 1) > tonumber(ARGV[3]) then
        status = 'failed'
      else
        status = 'queued'
      end
      if status == 'queued' then
        redis.call('HSET', jk, 'status', 'queued', 'worker_name', '', 'started_at', '', 'jobengine_claim', '')
        redis.call('LPUSH', qkey, id)
        notify(q)
        emit_job(jk, id, 'job.queued', q, 'queued')
      else
        end_job(ended, jk, id, q, status, ARGV[2], '', exec, '', text[status], f[4] or '604800', nil)
      end
      out[#out + 1] = id
      out[#out + 1] = q
      out[#out + 1] = status
    end
  end
end
end_jobs_written(ended)
return out
