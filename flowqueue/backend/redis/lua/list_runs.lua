-- Newest-first page of a flow's runs, with each run's bookkeeping, in one round trip.
-- K.runs the flow's run index. A.limit, A.before the cursor run id ('' for the newest
-- page), A.meta_template the meta key with "%s" for the run id (the page's runs are
-- known only here; their meta hashes live in each run's own slot).
local max = '+'
if A.before ~= '' then
  local ms = redis.call('HGET', string.format(A.meta_template, A.before), 'started_ms')
  if not ms then return false end -- an unknown run: Python says what to pass instead
  max = '(' .. string.rep('0', 13 - #ms) .. ms .. ':' .. A.before
end
local members = redis.call('ZRANGE', K.runs, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, tonumber(A.limit))
local out = {}
for _, member in ipairs(members) do
  local run = string.sub(member, 15)
  local meta = redis.call('HMGET', string.format(A.meta_template, run), 'flow', 'status', 'started_ms', 'ended_ms')
  out[#out + 1] = {run, meta[1] or '', meta[2] or '', meta[3] or '', meta[4] or ''}
end
return out
