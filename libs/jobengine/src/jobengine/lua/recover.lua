-- Find claims that were not renewed in time (their worker died: SIGKILL, OOM, node loss), on every queue,
-- and requeue those jobs at the front, or fail them once they have been recovered too often.
-- ARGV[1] now (epoch s)  ARGV[2] now (RQ timestamp)  ARGV[3] max recoveries  ARGV[4] max entries per queue
-- Returns a flat list: job id, queue, new status, ...
--!include _uncount (the tenant quota's decrement, shared: scripts.py inlines it)
local out = {}
for _, qkey in ipairs(redis.call('SMEMBERS', 'rq:queues')) do
  local q = string.sub(qkey, 10)
  local wip = 'rq:wip:' .. q
  local members = redis.call('ZRANGEBYSCORE', wip, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
  for _, m in ipairs(members) do
    redis.call('ZREM', wip, m)
    local sep = string.find(m, ':', 1, true)
    local id, exec = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    local jk = 'rq:job:' .. id
    local f = redis.call('HMGET', jk, 'status', 'jobengine_claim', 'jobengine_cancel', 'failure_ttl')
    if f[1] == 'started' and f[2] == exec then
      local ttl = tonumber(f[4]) or 604800
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
        redis.call('LPUSH', 'jobengine:notify:' .. q, '1')
        redis.call('LTRIM', 'jobengine:notify:' .. q, 0, 0)
      else
        local registry = (status == 'failed') and ('rq:failed:' .. q) or ('rq:canceled:' .. q)
        redis.call('HSET', jk, 'status', status, 'ended_at', ARGV[2], 'jobengine_claim', '')
        redis.call('XADD', 'rq:results:' .. id, 'MAXLEN', '~', '10', '*', 'type', (status == 'failed') and '2' or '3',
                   'worker_name', '', 'exc_string', ARGV[5 + ((status == 'failed') and 0 or 1)], 'execution_id', exec)
        redis.call('EXPIRE', jk, ttl)
        redis.call('EXPIRE', 'rq:results:' .. id, ttl)
        redis.call('ZADD', registry, tonumber(ARGV[1]) + ttl, id)
        uncount(jk)
        redis.call('PUBLISH', 'jobengine:done:' .. id, status)
      end
      out[#out + 1] = id
      out[#out + 1] = q
      out[#out + 1] = status
    end
  end
end
return out
