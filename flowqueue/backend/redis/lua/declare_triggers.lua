-- declare_triggers: K.registry the trigger registry's capped stream, K.declared its
-- declarations (field '<kind>|<name>|<flow>' -> '<declaration JSON>\n<stream id> <event
-- JSON>'). A.maxlen, A.ts and A.worker (who declares, for trigger.undeclared), A.flows
-- (the flows the worker serves, ' '-joined), A.items: field, declaration JSON, its
-- trigger.declared event JSON, repeated: every start trigger of those flows.
-- A trigger new or changed is recorded (trigger.declared); one of those flows that the
-- worker no longer declares is dropped (trigger.undeclared: its code lost it). Nothing
-- is written when nothing changed, so workers restarting with the same code add nothing.
-- Returns the number of events appended.
local appended = 0
local function record(field, decl, body)
  local id = redis.call('XADD', K.registry, 'MAXLEN', '~', A.maxlen, '*', 'event', body)
  redis.call('HSET', K.declared, field, decl .. '\n' .. id .. ' ' .. body)
  appended = appended + 1
end
local mine = {}
for i = 1, #A.items, 3 do
  local field, decl = A.items[i], A.items[i + 1]
  mine[field] = true
  local old = redis.call('HGET', K.declared, field)
  if not old or string.sub(old, 1, #decl + 1) ~= decl .. '\n' then
    record(field, decl, A.items[i + 2])
  end
end
local served = {}
for flow in string.gmatch(A.flows, '%S+') do
  served[flow] = true
end
local known = redis.call('HKEYS', K.declared)
for _, field in ipairs(known) do
  local kind, name, flow = string.match(field, '^([^|]*)|([^|]*)|(.*)$')
  if flow and served[flow] and not mine[field] then
    redis.call('HDEL', K.declared, field)
    local body = cjson.encode({kind = 'trigger.undeclared', trigger = kind, name = name,
      flow = flow, ts = A.ts, worker = A.worker})
    redis.call('XADD', K.registry, 'MAXLEN', '~', A.maxlen, '*', 'event', body)
    appended = appended + 1
  end
end
return appended
