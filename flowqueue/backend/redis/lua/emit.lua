-- emit: KEYS 5 steps hash, 6 emitted payloads hash, 8 handed timers, 10 timer payloads,
-- 11 signal stream of the name, 12 its waiters hash.
-- ARGV 6 name, 7 emit event body, 8 payload JSON, 9 republish (1/0), 10 signal maxlen,
-- 11 signal ttl ms, 12 grace ms, 13 candidate count, then per candidate: step, k,
-- k subscribed names.
-- Appends the emit event and signals the name (waking matching waits in any run). While
-- the run is live, records the first payload of each name and claims every candidate
-- whose subscriptions are all emitted, once (HSETNX). With republish set (a retried
-- emitter), ready steps still queued are returned again, since the earlier attempt may
-- have died before sending them; begin_step drops duplicates.
-- Returns {event id, {woken timer, ...}, {step, payload...}, ...}.
local id = append(ARGV[7], '-')
local _, woken = signal(KEYS[11], KEYS[12], KEYS[8], KEYS[10], ARGV[8], ARGV[4], ARGV[10],
  ARGV[11], ARGV[12])
local out = {id, woken}
if not run_ended() then
  redis.call('HSETNX', KEYS[6], ARGV[6], ARGV[8])
  local i = 14
  for _ = 1, tonumber(ARGV[13]) do
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
