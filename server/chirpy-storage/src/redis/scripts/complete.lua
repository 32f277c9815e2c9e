-- Records successes, each fenced by its lease. ARGV[2]: the number of items;
-- then 5 per item: queue, id, attempt, worker, result (JSON). Returns
-- {now_ms, {1 done | 0 not held | -1 not found, job}...}.
local out, synced = { NOW_MS }, {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local b = 3 + i * 5
  local q, id, attempt, w, result = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  if not synced[q] then
    synced[q] = true
    sync(q)
  end
  local m = settle(q, id)
  if not m then
    table.insert(out, { -1 })
  elseif held(m, w, attempt) then
    -- The result as apalis-redis writes it: a serialized Result<Value, String>.
    redis.call('HSET', k_meta(q, id), 'status', 'Done', 'result', '{"Ok":' .. result .. '}', 'done_at', NOW_S)
    redis.call('SREM', k_inflight(q, w), id)
    redis.call('ZREM', K_LEASES, lease_member(q, id))
    redis.call('SADD', k_done(q), id)
    place(q, id, 'succeeded', 0)
    table.insert(out, { 1, reply(q, id) })
  else
    table.insert(out, { 0, reply(q, id) })
  end
end
return out
