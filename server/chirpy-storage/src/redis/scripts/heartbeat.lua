-- Records a heartbeat of worker ARGV[2] (queues ARGV[3], comma-separated):
-- renews the leases it holds among the jobs ARGV[4..], and reports the
-- others as canceled or lost. Returns {now_ms, {canceled id...}, {lost id...}}.
local w = ARGV[2]
register(w, ARGV[3])
local look = split(redis.call('HGET', k_worker(w), 'seen'))
local canceled, lost = {}, {}
for i = 4, #ARGV do
  local id, m, q = ARGV[i], nil, nil
  for _, name in ipairs(look) do
    if redis.call('HEXISTS', k_data(name), id) == 1 then
      q = name
      break
    end
  end
  if q then m = load(q, id) end
  if m and not m['chirpy.canceled'] and (m.status == 'Running' or m.status == 'Queued') and m.locked_by == w then
    if redis.call('ZSCORE', K_LEASES, lease_member(q, id)) then
      redis.call('ZADD', K_LEASES, NOW_MS + LEASE_TTL_MS, lease_member(q, id))
    end
    redis.call('HSET', k_meta(q, id), 'locked_at', NOW_S)
  elseif m and (m['chirpy.canceled'] or m.status == 'Killed') then
    table.insert(canceled, id)
  else
    table.insert(lost, id)
  end
end
return { NOW_MS, canceled, lost }
