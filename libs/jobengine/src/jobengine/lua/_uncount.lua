-- Included by cancel.lua and, through _end.lua, by every script that ends a job (scripts.py inlines it).
-- A job counted against its tenant's backlog quota (enqueue.lua) leaves the count when it ends:
-- once, since the field is renamed ('-' prefix) as the counter is decremented.
-- counter: the job's jobengine_backlog field when the caller has read it already (false: no such field).
local function uncount(jk, counter)
  if counter == nil then counter = redis.call('HGET', jk, 'jobengine_backlog') end
  if counter and string.sub(counter, 1, 1) ~= '-' then
    redis.call('DECR', counter)
    redis.call('HSET', jk, 'jobengine_backlog', '-' .. counter)
  end
end
