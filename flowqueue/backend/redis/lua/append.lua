-- append(events): A.kinds the events' kinds (space-separated), A.bodies their JSON bodies.
local ids = {}
for kind in string.gmatch(A.kinds, '%S+') do
  local i = #ids + 1
  ids[i] = append(A.bodies[i], kind)
end
flush()
return ids
