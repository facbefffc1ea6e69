-- Shared head of every per-run script: the run's own keys K.stream (its log), K.meta,
-- K.steps, K.emits, K.awaits, K.copy (see compact_log); K.runs (the flow's
-- run index), K.feed, K.stats (the flow's counters), K.expiry (the flow's expiry set),
-- K.expiring (the flows that have one), K.archiving (ended runs the archiver has still to
-- copy); A.run_live, A.feed_live (channels), A.feed_maxlen, A.run_id, A.flow, how long a
-- run is kept once completed, failed or cancelled (A.*_retention_ms; 0: forever), and
-- A.archive ('1': ended runs wait for the archiver before their retention starts).
-- append(body, kind) writes an event to the run's log and does what CODE[kind] says
-- (APPEND_CODES in flowqueue/model/statuses.py).
-- The flow's counters are those of Keys.flow_stats (a run's end takes its awaiting steps
-- off the count). Live messages carry one "<id> <body>" line per event (JSON bodies hold no
-- raw newline), feed messages "<feed id> <id> <body>"; flush() publishes once per channel
-- per call, so a batch is one message per subscriber.
local live, feed, short = {}, {}, nil
local RETENTION = {completed = A.completed_retention_ms, failed = A.failed_retention_ms,
  cancelled = A.cancelled_retention_ms}

-- The run's meta, read whole once per call (one HMGET for the script's every question)
-- and kept in step with what the call writes to it: meta_set(field, value or false).
local META = {'flow', 'status', 'started_ms', 'ended_ms', 'expires_ms', 'awaiting'}
local cached = nil
local function meta()
  if cached == nil then
    local values = redis.call('HMGET', K.meta, unpack(META))
    cached = {}
    for i, field in ipairs(META) do
      cached[field] = values[i]
    end
  end
  return cached
end

local function meta_set(field, value)
  meta()[field] = value
end

-- A run whose bookkeeping is gone has expired (or never started): nothing writes to it.
local function run_gone()
  local m = meta()
  for _, field in ipairs(META) do
    if m[field] then
      return false
    end
  end
  return true
end

local function run_ended()
  return meta().ended_ms ~= false or run_gone()
end

-- Retention. An ended run's keys expire together, at meta's expires_ms; its entry in the
-- flow's expiry set, '<status>|<index member>|', keeps what dropping it from the index and
-- the counters takes once they are gone (expiry_lib.lua). The feed needs nothing per run:
-- the sweep trims it to the shortest retention, so no entry outlives its run.
local function index_member(started_ms)
  return string.rep('0', 13 - #started_ms) .. started_ms .. ':' .. A.run_id
end

local function expire_run(at)
  for _, key in ipairs({K.stream, K.meta, K.steps, K.emits, K.awaits}) do
    redis.call('PEXPIREAT', key, at)
  end
end

-- A script that may create one of the run's keys after the run ended (a late step's once
-- block) calls this, so the key expires with the others.
local function expire_with_run()
  local at = meta().expires_ms
  if at then
    expire_run(at)
  end
end

local function expiry_entry(at)
  local index = '|' .. index_member(meta().started_ms or '') .. '|'
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', K.expiry, at, at)) do
    if string.find(member, index, 1, true) then
      return member
    end
  end
end

-- Takes the run out of the expiry set (a run started again, or ended again through the
-- store).
local function unexpire()
  local at = meta().expires_ms
  if not at then
    return
  end
  local entry = expiry_entry(at)
  if entry then
    redis.call('ZREM', K.expiry, entry)
  end
  redis.call('HDEL', K.meta, 'expires_ms')
  meta_set('expires_ms', false)
  for _, key in ipairs({K.stream, K.meta, K.steps, K.emits, K.awaits}) do
    redis.call('PERSIST', key)
  end
end

-- A stream's newest node is given 4 KB ahead (Redis 7) and keeps it, so an ended run's
-- small log would take 4 KB whatever it holds; a copy takes only what it fills.
local function compact_log()
  if redis.call('COPY', K.stream, K.copy, 'REPLACE') == 1 then
    redis.call('RENAME', K.copy, K.stream)
  end
end

-- Where each step's next event wait starts looking (<step>|since) serves a live run only.
local function forget_since()
  local since = {}
  for _, field in ipairs(redis.call('HKEYS', K.steps)) do
    if string.sub(field, -6) == '|since' then
      since[#since + 1] = field
    end
  end
  for i = 1, #since, 1000 do -- unpack() takes a few thousand values at most
    redis.call('HDEL', K.steps, unpack(since, i, math.min(i + 999, #since)))
  end
end

-- Starts an ended run's retention, counted from `from_ms` (its end): its keys expire then
-- (at once if that has passed), and its entry in the expiry set says what the sweep drops.
local function keep(status, from_ms)
  local ttl = tonumber(RETENTION[status])
  if ttl > 0 then
    local at = math.max(from_ms + ttl, now_ms())
    local index = index_member(meta().started_ms or '')
    redis.call('ZADD', K.expiry, at, status .. '|' .. index .. '|')
    redis.call('SADD', K.expiring, A.flow)
    redis.call('HSET', K.meta, 'expires_ms', at)
    meta_set('expires_ms', tostring(at))
    expire_run(at)
  end
end

local function end_run(status)
  unexpire()
  redis.call('DEL', K.emits) -- the emissions' payloads served joins only
  forget_since()
  compact_log()
  if A.archive == '1' then
    -- With an archive, nothing expires before the archiver copied it: the run waits in
    -- K.archiving (by its end), and archived.lua starts its retention.
    redis.call('ZADD', K.archiving, now_ms(), A.run_id)
  else
    keep(status, now_ms())
  end
end

local function set_status(kind, id)
  local status, ms = RUN_STATUS[kind], string.match(id, '^(%d+)')
  local m = meta()
  local prev = m.status
  if prev ~= status then
    if prev then
      redis.call('HINCRBY', K.stats, prev, -1)
    end
    redis.call('HINCRBY', K.stats, status, 1)
  end
  if kind == 'flow.started' then
    if m.started_ms then
      redis.call('HSET', K.meta, 'flow', A.flow, 'status', status)
    else
      redis.call('HSET', K.meta, 'flow', A.flow, 'status', status, 'started_ms', ms)
      meta_set('started_ms', ms)
      redis.call('ZADD', K.runs, 0, index_member(ms))
    end
    meta_set('flow', A.flow)
    meta_set('status', status)
    unexpire() -- started again: it never expires
    return
  end
  local awaiting = tonumber(m.awaiting or '0')
  if awaiting ~= 0 then -- the run's awaits end with it
    redis.call('HINCRBY', K.stats, 'awaiting', -awaiting)
    redis.call('HSET', K.meta, 'awaiting', 0)
    meta_set('awaiting', '0')
  end
  redis.call('HSET', K.meta, 'flow', A.flow, 'status', status, 'ended_ms', ms)
  meta_set('flow', A.flow)
  meta_set('status', status)
  meta_set('ended_ms', ms)
  end_run(status)
end

local function count_duration(body)
  local ok, event = pcall(cjson.decode, body)
  local ms = ok and type(event.data) == 'table' and tonumber(event.data.duration_ms)
  if not ms then
    return
  end
  local bucket = 'inf'
  for _, bound in ipairs(DURATION_BUCKETS) do
    if ms <= bound then
      bucket = tostring(bound)
      break
    end
  end
  redis.call('HINCRBY', K.stats, 'step_ms_le_' .. bucket, 1)
  redis.call('HINCRBY', K.stats, 'step_ms_sum', math.floor(ms))
end

local function count_awaiting(delta)
  if not meta().ended_ms then
    meta_set('awaiting', tostring(redis.call('HINCRBY', K.meta, 'awaiting', delta)))
    redis.call('HINCRBY', K.stats, 'awaiting', delta)
  end
end

-- What the run's log keeps of an event: its body without the run id and flow fields every
-- event of the run repeats, and the run id anywhere else in it (a step's task id) as one
-- byte, \1, that JSON text never holds raw; once the run's meta names the flow, so the
-- store can put both back when it reads (RedisEventStore.read). Else the whole body. A
-- script that must not look sets `short` first. The live channel and the feed carry the
-- whole body.
local function stored(body, kind)
  if short == nil then
    short = meta().flow == A.flow
  end
  local head = '{"kind":"' .. kind .. '","run_id":"' .. A.run_id .. '","flow":"' .. A.flow .. '",'
  if not short or string.sub(body, 1, #head) ~= head or string.find(body, '\1', 1, true) then
    return body
  end
  local rest = string.gsub(string.sub(body, #head + 1), (string.gsub(A.run_id, '%W', '%%%0')), '\1')
  return '{"kind":"' .. kind .. '",' .. rest
end

local function append(body, kind)
  local code = CODE[kind] or error('no append code for event kind ' .. tostring(kind))
  if A.archive == '1' and meta().expires_ms then
    -- Archived already (its retention started): it waits for the archiver again, so the
    -- archive gets what this appends (a late note) before Redis deletes the run.
    unexpire()
    redis.call('ZADD', K.archiving, now_ms(), A.run_id)
  end
  local id = redis.call('XADD', K.stream, '*', 'e', stored(body, kind))
  local line = id .. ' ' .. body
  live[#live + 1] = line
  if code ~= 'log' then
    local fid = redis.call('XADD', K.feed, 'MAXLEN', '~', A.feed_maxlen, '*', 'e', body, 'id', id)
    feed[#feed + 1] = fid .. ' ' .. line
    if code == 'status' then
      set_status(kind, id)
    elseif code == 'await' then
      count_awaiting(1)
    elseif code == 'resume' then
      count_awaiting(-1)
    elseif code == 'duration' then
      count_duration(body)
    end
  end
  return id
end

local function flush()
  if #live > 0 then
    redis.call('HINCRBY', K.stats, 'events', #live)
    redis.call('PUBLISH', A.run_live, table.concat(live, '\n'))
  end
  if #feed > 0 then
    redis.call('PUBLISH', A.feed_live, table.concat(feed, '\n'))
  end
end

-- A run's start: flow.started, and its entry steps queued.
local function start(body, entries)
  short = true -- the run's meta names its flow from here on
  local id = append(body, 'flow.started')
  for _, step in ipairs(entries) do
    redis.call('HSET', K.steps, step, STATUS.queued)
  end
  return id
end

-- An entry step's claim records its run's start (the header's StartNote) if its starter has
-- not yet, but not once the shortest retention (shortest_ms; 0: no run expires) has passed
-- since the start was made: its run may have ended and expired by then (its keys gone),
-- and must not start again.
local function too_late(made_ms, shortest_ms)
  local shortest = tonumber(shortest_ms)
  return shortest > 0 and now_ms() > tonumber(made_ms) + shortest
end

-- Python writes a SLOT's "$name" as a JSON string where the script supplies a value (a
-- number or raw JSON; a function replacement, so '%' in the value is not a pattern escape).
local function fill(body, slot, value)
  local text = tostring(value)
  return (string.gsub(body, slot, function() return text end))
end
