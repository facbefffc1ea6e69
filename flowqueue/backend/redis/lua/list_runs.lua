-- Newest-first page of a flow's runs, with each run's bookkeeping, in one round trip.
-- KEYS: 1 flow run index.
-- ARGV: 1 limit, 2 cursor run id ("" for the newest page), 3 meta key template ("%s" = run id).
local max = '+'
if ARGV[2] ~= '' then
  local ms = redis.call('HGET', string.format(ARGV[3], ARGV[2]), 'started_ms')
  if not ms then return redis.error_reply('UNKNOWN_RUN') end
  max = '(' .. string.rep('0', 13 - #ms) .. ms .. ':' .. ARGV[2]
end
local members = redis.call('ZRANGE', KEYS[1], max, '-', 'BYLEX', 'REV', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, member in ipairs(members) do
  local run = string.sub(member, 15)
  local meta = redis.call('HMGET', string.format(ARGV[3], run), 'flow', 'status', 'started_ms', 'ended_ms')
  out[#out + 1] = {run, meta[1] or '', meta[2] or '', meta[3] or '', meta[4] or ''}
end
return out
