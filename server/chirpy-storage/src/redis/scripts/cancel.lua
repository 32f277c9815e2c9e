-- Cancels a pending, scheduled or running job. ARGV[2]: queue, ARGV[3]: id.
-- Returns {now_ms, 1 canceled | 0 not cancelable | -1 not found, job}.
local q, id = ARGV[2], ARGV[3]
sync(q)
local m = settle(q, id)
if not m then return { NOW_MS, -1 } end
local st = derive(m)
if st ~= 'queued' and st ~= 'running' then return { NOW_MS, 0, reply(q, id) } end
if st == 'queued' then unqueue(q, id, m) end
if redis.call('ZREM', K_LEASES, lease_member(q, id)) == 1 and m.locked_by then
  redis.call('SREM', k_inflight(q, m.locked_by), id)
end
-- A job running on an Apalis worker stays in that worker's in-flight set, so
-- that apalis-redis can still acknowledge it; `chirpy.canceled` makes the
-- cancel outlast whatever status it then writes (see settle).
redis.call('HSET', k_meta(q, id), 'status', 'Killed', 'done_at', NOW_S, 'chirpy.canceled', NOW_MS)
redis.call('HDEL', k_meta(q, id), 'locked_by')
place(q, id, 'canceled', 0)
return { NOW_MS, 1, reply(q, id) }
