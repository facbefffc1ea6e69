-- sweep (flowqueue gc, and each worker now and then): drops up to A.batch of the flow's
-- expired runs, or with A.dry = '1' only lists them, from A.offset on.
-- Returns {{run, status, expired ms}, ...}.
return drop_due(A.dry == '1', tonumber(A.offset))
