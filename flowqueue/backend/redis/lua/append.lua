-- append(events): A.kinds the events' kinds (space-separated), A.bodies their JSON bodies,
-- A.needs_run '1' when they are a step attempt's: a run that is gone (expired) takes none
-- of them (returns false), rather than a log no run owns. Other appends (a log of the
-- store's own, maybe of no run) are kept whole, with no lookup.
if A.needs_run == '1' then
  local flow = meta().flow
  if not flow then
    return false
  end
  short = flow == A.flow
else
  short = false
end
local ids = {}
for kind in string.gmatch(A.kinds, '%S+') do
  local i = #ids + 1
  ids[i] = append(A.bodies[i], kind)
end
flush()
return ids
