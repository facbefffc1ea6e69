-- Newest-first page of a flow's runs, with each run's bookkeeping, in one round trip; the
-- flow's expired runs are dropped first (up to A.batch; expiry_lib.lua). K.runs the flow's
-- run index. A.limit, A.before the cursor run id ('' for the newest page), A.before_ms its
-- start ('': read from its meta; given for an archived run, whose keys are gone),
-- A.meta_template the meta key with "%s" for the run id. The page's runs are known only here, so this
-- script reads meta keys it was not given (in each run's own slot): fine on one Redis,
-- not on Redis Cluster.
drop_due(false, 0)
local max = '+'
if A.before ~= '' then
  local ms = A.before_ms
  if ms == '' then
    ms = redis.call('HGET', string.format(A.meta_template, A.before), 'started_ms')
    if not ms then return false end -- an unknown run: Python says what to pass instead
  end
  max = '(' .. string.rep('0', 13 - #ms) .. ms .. ':' .. A.before
end
local limit, out = tonumber(A.limit), {}
while #out < limit do
  local want = limit - #out
  local members = redis.call('ZRANGE', K.runs, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, want)
  for _, member in ipairs(members) do
    local run = string.sub(member, 15)
    local meta = redis.call('HMGET', string.format(A.meta_template, run), 'flow', 'status', 'started_ms', 'ended_ms')
    if meta[2] then -- a run whose keys expired after this drop is not listed
      out[#out + 1] = {run, meta[1] or '', meta[2], meta[3] or '', meta[4] or ''}
    end
    max = '(' .. member
  end
  if #members < want then
    break
  end
end
return out
