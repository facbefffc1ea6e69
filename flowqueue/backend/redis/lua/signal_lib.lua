-- Event signals, shared by emit.lua (ctx.emit in a run) and signal.lua (flowqueue.emit).

-- Every match field equals the payload's (top-level fields; JSON scalars, so Lua's ==
-- agrees with Python's: booleans equal only booleans, null only null).
local function matches(payload, match)
  if match == nil or match == cjson.null or next(match) == nil then
    return true
  end
  if type(payload) ~= 'table' then
    return false
  end
  for k, v in pairs(match) do
    if payload[k] ~= v then
      return false
    end
  end
  return true
end

local function decoded(payload)
  local ok, value = pcall(cjson.decode, payload)
  if ok then
    return value
  end
end

-- Appends an emission of a name to its signal stream (so a wait registered a moment
-- later still finds it) and wakes every waiter it matches: the waiter goes, and its wake
-- timer waits in the handed set with the payload beside it. The caller sends the step
-- at once; if it dies first, the pump sends it after the grace period.
-- Returns the signal id and the woken timers.
local function signal(skey, wkey, handed, payloads, payload, source, maxlen, ttl, grace)
  local sid = redis.call('XADD', skey, 'MAXLEN', '~', maxlen, '*', 'p', payload, 'r', source)
  redis.call('PEXPIRE', skey, ttl)
  local woken = {}
  local waiters = redis.call('HGETALL', wkey)
  if #waiters == 0 then
    return sid, woken
  end
  local value = decoded(payload)
  local again = now_ms() + tonumber(grace)
  for i = 1, #waiters, 2 do
    local waiter = cjson.decode(waiters[i + 1])
    if matches(value, waiter.match) then
      redis.call('HDEL', wkey, waiters[i])
      local spec = waiter.timer
      spec.signal = sid
      local member = cjson.encode(spec)
      redis.call('ZADD', handed, again, member)
      redis.call('HSET', payloads, member, payload)
      woken[#woken + 1] = member
    end
  end
  return sid, woken
end
