-- Lists the workers heard from since ARGV[2] (Unix ms): Chirpy's remote
-- workers, and Apalis workers registered in any queue's workers set.
-- Returns {now_ms, {id, queues (comma-separated), kind, started_at_ms or
-- false, last_seen_ms, running}...}.
local since_ms = tonumber(ARGV[2])
local since_s = math.floor(since_ms / 1000)
local out = { NOW_MS }
for _, w in ipairs(redis.call('ZRANGEBYSCORE', K_WORKERS, since_ms, '+inf')) do
  local info = to_table(redis.call('HGETALL', k_worker(w)))
  local running = 0
  for _, q in ipairs(split(info.seen)) do running = running + redis.call('SCARD', k_inflight(q, w)) end
  table.insert(out, { w, info.queues or '', 'chirpy', info.started_at or false,
    redis.call('ZSCORE', K_WORKERS, w), running })
end
local names, named = redis.call('ZRANGE', K_QUEUES, 0, -1), {}
for _, q in ipairs(names) do named[q] = true end
for _, key in ipairs(redis.call('ZRANGE', K_APALIS_QUEUES, 0, -1)) do
  local q = string.match(key, '^(.*):workers$')
  if q and not named[q] then
    named[q] = true
    table.insert(names, q)
  end
end
local apalis, order = {}, {}
for _, q in ipairs(names) do
  local seen = redis.call('ZRANGEBYSCORE', k_workers(q), since_s, '+inf', 'WITHSCORES')
  for i = 1, #seen, 2 do
    local w, last = seen[i], tonumber(seen[i + 1]) * 1000
    if not redis.call('ZSCORE', K_WORKERS, w) then
      local entry = apalis[w]
      if not entry then
        entry = { queues = {}, last = 0, running = 0,
          kind = redis.call('HGET', k_worker_meta(q, w), 'backend_name') or 'apalis-redis' }
        apalis[w] = entry
        table.insert(order, w)
      end
      table.insert(entry.queues, q)
      entry.last = math.max(entry.last, last)
      entry.running = entry.running + redis.call('SCARD', k_inflight(q, w))
    end
  end
end
for _, w in ipairs(order) do
  local e = apalis[w]
  table.insert(out, { w, table.concat(e.queues, ','), e.kind, false, e.last, e.running })
end
return out
