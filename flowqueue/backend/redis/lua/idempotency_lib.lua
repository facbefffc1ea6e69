-- Idempotency records (Keys.idempotency): what the first call with a key did, kept for
-- A.idempotency_ms; a later call with the key gets the same answer and writes nothing.
-- An answer: {'new' | 'seen' | 'done', runs JSON, signal id, woken count, {woken timer, ...}};
-- 'done' once the caller has started the runs ('seen': it may still be starting them).
local function recorded(key)
  local r = redis.call('HMGET', key, 'runs', 'signal', 'woken', 'done')
  if r[1] then
    return {r[4] and 'done' or 'seen', r[1], r[2] or '', tonumber(r[3] or '0'), {}}
  end
end

local function record(key, runs, sid, woken, ms)
  redis.call('HSET', key, 'runs', runs, 'signal', sid, 'woken', woken)
  redis.call('PEXPIRE', key, ms)
end
