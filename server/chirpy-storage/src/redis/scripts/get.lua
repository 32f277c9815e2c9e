-- Reads one job. ARGV[2]: queue, ARGV[3]: id. Returns {now_ms, job or false}.
local q, id = ARGV[2], ARGV[3]
sync(q)
if not settle(q, id) then return { NOW_MS, false } end
return { NOW_MS, reply(q, id) }
