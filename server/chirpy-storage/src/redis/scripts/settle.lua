-- Settles one job after an Apalis worker's event (see settle in common.lua).
-- ARGV[2]: queue, ARGV[3]: id. Returns now_ms.
sync(ARGV[2])
settle(ARGV[2], ARGV[3])
return NOW_MS
