-- send: A.sends, a JSON list of broker writes (send_lib.lua): a step's delivery sent on
-- its own (a timer, a retry, a resume), in one round trip.
send(check_writes(cjson.decode(A.sends)))
return 1
