-- Sends: the Redis writes kombu's Redis transport makes to send one Celery message (the
-- LPUSH to its queue's list, the PUBLISH of its task-sent event, a PEXPIRE of a queue
-- declared with x-expires), captured by flowqueue/runtime/_sender.py. A script makes them
-- in the same call as the write that decides the send, so a step is queued exactly when
-- its claim is recorded. They name the broker's keys (not the run's): used only when the
-- broker is this same Redis, which a Celery broker can only be on a single server.
local BROKER_WRITES = {lpush = true, publish = true, pexpire = true}

-- Before any write: a script that raises later would leave its earlier writes made.
local function check_writes(writes)
  for _, write in ipairs(writes) do
    if not BROKER_WRITES[write[1]] then
      error('flowqueue: not a broker write: ' .. tostring(write[1]))
    end
  end
  return writes
end

local function send(writes)
  for _, write in ipairs(writes) do
    redis.call(write[1], unpack(write[2]))
  end
end
