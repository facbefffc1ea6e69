-- emit: KEYS 5 steps hash, 6 emitted payloads hash.
-- ARGV 6 name, 7 emit event body, 8 payload JSON, 9 republish (1/0), 10 candidate count,
-- then per candidate: step, k, k subscribed names.
-- Appends the emit event; while the run is live, records the first payload of each name
-- and claims every candidate whose subscriptions are all emitted, once (HSETNX). With
-- republish set (a retried emitter), ready steps still queued are returned again, since
-- the earlier attempt may have died before sending them; begin_step drops duplicates.
-- Returns {event id, {step, payload...}, ...}.
local out = {append(ARGV[7], '-')}
if not run_ended() then
  redis.call('HSETNX', KEYS[6], ARGV[6], ARGV[8])
  local i = 11
  for _ = 1, tonumber(ARGV[10]) do
    local step, k = ARGV[i], tonumber(ARGV[i + 1])
    local names = {}
    for j = 1, k do
      names[j] = ARGV[i + 1 + j]
    end
    i = i + 2 + k
    local payloads = redis.call('HMGET', KEYS[6], unpack(names))
    local ready = true
    for j = 1, k do
      if not payloads[j] then
        ready = false
        break
      end
    end
    if ready then
      local claimed = redis.call('HSETNX', KEYS[5], step, 'queued') == 1
      if claimed or (ARGV[9] == '1' and redis.call('HGET', KEYS[5], step) == 'queued') then
        local claim = {step}
        for j = 1, k do
          claim[j + 1] = payloads[j]
        end
        out[#out + 1] = claim
      end
    end
  end
end
flush()
return out
