-- Renews one lease. ARGV[2]: queue, ARGV[3]: id, ARGV[4]: attempt, ARGV[5]:
-- worker. Returns {now_ms, 1 | 0 not held | -1 not found, job}; the job's
-- lease expiry is the new one.
local q, id, attempt, w = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
sync(q)
local m = settle(q, id)
if not m then return { NOW_MS, { -1 } } end
if not held(m, w, attempt) then return { NOW_MS, { 0, reply(q, id) } } end
redis.call('ZADD', K_LEASES, NOW_MS + LEASE_TTL_MS, lease_member(q, id))
redis.call('HSET', k_meta(q, id), 'locked_at', NOW_S)
return { NOW_MS, { 1, reply(q, id) } }
