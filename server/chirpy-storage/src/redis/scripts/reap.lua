-- Puts the jobs whose Chirpy lease expired back to run, or in the failure
-- queue when out of attempts; then brings every queue up to date with what
-- Apalis workers and producers did (see sync, adopt, sweep). ARGV[2]: the
-- error recorded. Returns {now_ms, the queue of each job put back...}.
local out, woken, synced = { NOW_MS }, {}, {}
local result = cjson.encode({ Err = ARGV[2] })
for _, member in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', NOW_MS, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', K_LEASES, member)
  local q, id = string.match(member, '^(.*)/(.*)$')
  local m = q and load(q, id)
  if m and not m['chirpy.canceled'] and (m.status == 'Running' or m.status == 'Queued') then
    if not synced[q] then
      synced[q] = true
      sync(q)
    end
    local meta = k_meta(q, id)
    if m.locked_by then redis.call('SREM', k_inflight(q, m.locked_by), id) end
    redis.call('HDEL', meta, 'locked_by')
    if tonumber(m.attempts) >= tonumber(m.max_attempts) then
      redis.call('HSET', meta, 'status', 'Failed', 'done_at', NOW_S, 'result', result)
      redis.call('SADD', k_dead(q), id)
      place(q, id, 'dead', 0)
    else
      redis.call('HSET', meta, 'status', 'Pending', 'result', result)
      m.status = 'Pending'
      requeue(q, id, m)
      woken[q] = true
    end
    table.insert(out, q)
  end
end
register_apalis_queues()
for _, q in ipairs(redis.call('ZRANGE', K_QUEUES, 0, -1)) do
  sync(q)
  adopt(q)
  sweep(q)
end
for q in pairs(woken) do announce(q) end
return out
