-- rerun_note: A.event a flow.rerun body (the run started again with this one's input).
-- Appended whether the run has ended or not (an ended run's retention keeps it with the
-- rest); a run that is gone (expired) takes nothing. Returns its id, or false.
if run_gone() then
  return false
end
local id = append(A.event, 'flow.rerun')
flush()
return id
