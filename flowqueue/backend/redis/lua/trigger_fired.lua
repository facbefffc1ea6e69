-- trigger_fired: K.registry, K.last (registry_lib.lua); A.field ('<kind>|<name>'), A.event
-- (the trigger.fired JSON), A.maxlen. Returns the event's stream id.
return fired(K.registry, K.last, A.field, A.event, A.maxlen)
