-- finish_step: finish_lib.lua's finish(), published.
local finished = finish()
flush()
return finished
