-- claim_finish: a first delivery's deferred claim (claim_lib.lua: no timer, attempt 1)
-- made with its end (finish_lib.lua), in one call. Returns the claim's decision when it
-- is not 'run' (nothing is written), else {'run', attempt, finish()'s reply...}.
local claimed = claim('', true)
if claimed[1] ~= 'run' then
  return claimed
end
local finished = finish()
flush()
return {'run', claimed[2], unpack(finished)}
