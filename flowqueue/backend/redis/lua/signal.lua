-- signal (flowqueue.emit from outside any run): KEYS 1 signal stream, 2 waiters hash,
-- 3 handed timers, 4 timer payloads. ARGV 1 payload JSON, 2 stream maxlen, 3 ttl ms,
-- 4 grace ms. Returns {signal id, {woken timer, ...}}.
local sid, woken = signal(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], '', ARGV[2], ARGV[3],
  ARGV[4])
return {sid, woken}
