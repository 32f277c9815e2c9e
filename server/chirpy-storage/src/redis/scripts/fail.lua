-- Records failures, each fenced by its lease, as planned by the caller
-- (apalis_sql::plan_failure). ARGV[2]: the number of items; then 7 per item:
-- queue, id, attempt, worker, dead ('1' or '0'), run_at (Unix seconds, for a
-- retry), error. Returns {now_ms, {1 | 0 not held | -1 not found, job}...}.
local out, synced, woken = { NOW_MS }, {}, {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local b = 3 + i * 7
  local q, id, attempt, w, dead, run_at, err =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  if not synced[q] then
    synced[q] = true
    sync(q)
  end
  local m = settle(q, id)
  if not m then
    table.insert(out, { -1 })
  elseif held(m, w, attempt) then
    local meta = k_meta(q, id)
    local result = cjson.encode({ Err = err })
    redis.call('SREM', k_inflight(q, w), id)
    redis.call('ZREM', K_LEASES, lease_member(q, id))
    if dead == '1' then
      -- A non-retryable failure lowers max_attempts, so that the state
      -- table reads it as dead (as the SQL stores do).
      local max_attempts = math.min(tonumber(m.max_attempts), tonumber(m.attempts))
      redis.call('HSET', meta, 'status', 'Failed', 'max_attempts', max_attempts, 'done_at', NOW_S, 'result', result)
      redis.call('SADD', k_dead(q), id)
      place(q, id, 'dead', 0)
    else
      redis.call('HSET', meta, 'status', 'Pending', 'chirpy.run_at', run_at, 'result', result)
      redis.call('HDEL', meta, 'locked_by')
      m.status, m['chirpy.run_at'] = 'Pending', run_at
      requeue(q, id, m)
      woken[q] = true
    end
    table.insert(out, { 1, reply(q, id) })
  else
    table.insert(out, { 0, reply(q, id) })
  end
end
for q in pairs(woken) do announce(q) end
return out
