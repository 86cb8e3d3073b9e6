-- Included by every script that puts a job in a queue (scripts.py inlines it where they say --!include).
-- Wake one idle worker of queue q: its wake-up list holds at most one element, never the job itself.
local function notify(q)
  redis.call('LPUSH', K.notify .. q, '1')
  redis.call('LTRIM', K.notify .. q, 0, 0)
end
