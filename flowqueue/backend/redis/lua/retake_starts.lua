-- retake_starts (schedules): K.starting the won ticks whose run has not been confirmed
-- started (claim_ticks.lua). A.now_ms, A.redo_ms, A.members: those a caller found due.
-- Takes each member still due (its start was owed by a pump that died or failed): due
-- again at now + redo, so one caller at a time starts it. Returns the members taken.
local out = {}
local redo_at = tonumber(A.now_ms) + tonumber(A.redo_ms)
for _, member in ipairs(A.members) do
  local at = redis.call('ZSCORE', K.starting, member)
  if at and tonumber(at) <= tonumber(A.now_ms) then
    redis.call('ZADD', K.starting, redo_at, member)
    out[#out + 1] = member
  end
end
return out
