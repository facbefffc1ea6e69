-- Triggers, shared by begin_step.lua, resume.lua and cancel.lua: a trigger key holds JSON
-- {run_id, flow, step, key, state}; once it is no longer pending it expires after the
-- retention period (a second resume meanwhile is told "already used" rather than "unknown").
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
