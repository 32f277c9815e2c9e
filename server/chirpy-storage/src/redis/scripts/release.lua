-- Hands leased, unstarted jobs back: pending again, the attempt uncounted.
-- ARGV[2]: the number of items; then 4 per item: queue, id, attempt, worker.
-- Returns {now_ms, {1 | 0 not held | -1 not found, job}...}.
local out, synced, woken = { NOW_MS }, {}, {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local b = 3 + i * 4
  local q, id, attempt, w = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if not synced[q] then
    synced[q] = true
    sync(q)
  end
  local m = settle(q, id)
  if not m then
    table.insert(out, { -1 })
  elseif held(m, w, attempt) then
    local meta = k_meta(q, id)
    local attempts = redis.call('HINCRBY', meta, 'attempts', -1)
    redis.call('HSET', meta, 'status', 'Pending')
    redis.call('HDEL', meta, 'locked_by', 'locked_at')
    redis.call('SREM', k_inflight(q, w), id)
    redis.call('ZREM', K_LEASES, lease_member(q, id))
    m.status, m.attempts = 'Pending', tostring(attempts)
    requeue(q, id, m)
    woken[q] = true
    table.insert(out, { 1, reply(q, id) })
  else
    table.insert(out, { 0, reply(q, id) })
  end
end
for q in pairs(woken) do announce(q) end
return out
