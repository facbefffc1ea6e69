-- Triggers: a trigger key holds JSON {run_id, flow, step, key, state}; once it is no
-- longer pending it expires after the retention period (a second resume meanwhile is told
-- "already used" rather than "unknown").
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
