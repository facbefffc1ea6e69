-- Timers and triggers of awaits, shared by begin_step.lua, resume.lua and cancel.lua.

-- A timer no delivery is to claim ('' for none) leaves both timer sets.
local function unschedule(timer)
  if timer ~= '' then
    redis.call('ZREM', K.timers, timer)
    redis.call('ZREM', K.handed, timer)
  end
end

-- A trigger key holds JSON {run_id, flow, step, key, state}; once it is no longer pending it
-- expires after the retention period (a second resume meanwhile is told "already used"
-- rather than "unknown").
local function settle_trigger(tkey, state, retention)
  local raw = redis.call('GET', tkey)
  if raw then
    local t = cjson.decode(raw)
    if t.state == 'pending' then
      t.state = state
      redis.call('SET', tkey, cjson.encode(t), 'PX', retention)
    end
  end
end

-- An await that ends unresolved (timeout, cancel) lets go of its waiter and its trigger.
local function release(rec, wkey, tkey, state, retention)
  if rec.waiter ~= '' then
    redis.call('HDEL', wkey, rec.waiter)
  end
  if rec.tkey ~= '' then
    settle_trigger(tkey, state, retention)
  end
end
