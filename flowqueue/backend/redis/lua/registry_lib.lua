-- registry_lib (the trigger registry, start triggers): fired(registry, last, field, body,
-- maxlen) appends a trigger.fired event (body, its JSON) to the capped registry stream and
-- keeps it as the trigger's last firing (last: hash field -> '<stream id> <body>').
local function fired(registry, last, field, body, maxlen)
  local id = redis.call('XADD', registry, 'MAXLEN', '~', maxlen, '*', 'event', body)
  redis.call('HSET', last, field, id .. ' ' .. body)
  return id
end
