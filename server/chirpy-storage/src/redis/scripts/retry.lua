-- Makes dead jobs pending again, attempts reset. ARGV[2]: queue, ARGV[3]:
-- 'one' (ARGV[4]: the id; returns {now_ms, 1 | 0 not dead | -1 not found,
-- job}), 'ids' (ARGV[4..]: ids) or 'all' (returns {now_ms, id...}).
local q, mode = ARGV[2], ARGV[3]
sync(q)
local function revive(id, m)
  redis.call('SREM', k_dead(q), id)
  redis.call('HSET', k_meta(q, id), 'status', 'Pending', 'attempts', 0, 'chirpy.run_at', NOW_S)
  redis.call('HDEL', k_meta(q, id), 'done_at', 'locked_by', 'locked_at')
  m.status, m.attempts, m['chirpy.run_at'] = 'Pending', '0', tostring(NOW_S)
  requeue(q, id, m)
end
if mode == 'one' then
  local id = ARGV[4]
  local m = settle(q, id)
  if not m then return { NOW_MS, -1 } end
  if derive(m) ~= 'dead' then return { NOW_MS, 0, reply(q, id) } end
  revive(id, m)
  announce(q)
  return { NOW_MS, 1, reply(q, id) }
end
local ids = {}
if mode == 'all' then
  sweep(q)
  ids = redis.call('ZRANGE', k_state(q, 'dead'), 0, -1)
else
  for i = 4, #ARGV do table.insert(ids, ARGV[i]) end
end
local out = { NOW_MS }
for _, id in ipairs(ids) do
  local m = settle(q, id)
  if m and derive(m) == 'dead' then
    revive(id, m)
    table.insert(out, id)
  end
end
if #out > 1 then announce(q) end
return out
