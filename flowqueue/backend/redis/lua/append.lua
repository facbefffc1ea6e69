-- append(events): ARGV 6 one append code per event, 7.. the events' JSON bodies.
local codes = ARGV[6]
local ids = {}
for j = 1, #codes do
  ids[j] = append(ARGV[6 + j], string.sub(codes, j, j))
end
flush()
return ids
