-- Stores a batch of jobs, all or none: every job is first found new or a
-- duplicate (by idempotency key, in its queue or earlier in the batch),
-- then the new ones are written.
-- ARGV[2]: the number of jobs; then 10 per job: queue, id, payload, run_at,
-- priority, max_attempts, idempotency key ('' for none), metadata (JSON),
-- retry initial and max backoff in ms ('' for none).
-- Returns {now_ms, {1 new | 0 duplicate, job}...}.
local jobs, claimed, synced, woken = {}, {}, {}, {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local b = 3 + i * 10
  table.insert(jobs, { q = ARGV[b], id = ARGV[b + 1], payload = ARGV[b + 2], run_at = ARGV[b + 3],
    priority = ARGV[b + 4], max_attempts = ARGV[b + 5], key = ARGV[b + 6], metadata = ARGV[b + 7],
    initial = ARGV[b + 8], max = ARGV[b + 9] })
end
for _, j in ipairs(jobs) do
  if j.key ~= '' then
    local slot = j.q .. '\n' .. j.key
    local existing = claimed[slot]
    if not existing then
      existing = redis.call('GET', k_idem(j.q, j.key))
      if existing and redis.call('HEXISTS', k_data(j.q), existing) == 0 then existing = false end
    end
    if existing then j.existing = existing else claimed[slot] = j.id end
  end
end
for _, j in ipairs(jobs) do
  if not synced[j.q] then
    synced[j.q] = true
    sync(j.q)
  end
end
local out = { NOW_MS }
for _, j in ipairs(jobs) do
  if j.existing then
    settle(j.q, j.existing)
    table.insert(out, { 0, reply(j.q, j.existing) })
  else
    local fields = { 'attempts', '0', 'max_attempts', j.max_attempts, 'status', 'Pending', 'idempotency_key', j.key,
      'chirpy.priority', j.priority, 'chirpy.run_at', j.run_at, 'chirpy.metadata', j.metadata }
    if j.initial ~= '' then
      for _, v in ipairs({ 'chirpy.retry.initial_backoff_ms', j.initial, 'chirpy.retry.max_backoff_ms', j.max }) do
        table.insert(fields, v)
      end
    end
    -- The producer's metadata also as plain fields, as apalis-redis stores
    -- it, so that Apalis workers see it in their tasks' metadata.
    for k, v in pairs(cjson.decode(j.metadata)) do
      if not APALIS_FIELDS[k] then
        table.insert(fields, k)
        table.insert(fields, v)
      end
    end
    redis.call('HSET', k_data(j.q), j.id, j.payload)
    redis.call('HSET', k_meta(j.q, j.id), unpack(fields))
    if j.key ~= '' then redis.call('SET', k_idem(j.q, j.key), j.id) end
    redis.call('ZADD', k_jobs(j.q), 0, j.id)
    redis.call('ZADD', K_QUEUES, 0, j.q)
    -- Apalis's registry of queues, which apalis-board lists.
    redis.call('ZADD', K_APALIS_QUEUES, 'GT', NOW_S, k_workers(j.q))
    requeue(j.q, j.id, to_table(fields))
    woken[j.q] = true
    table.insert(out, { 1, reply(j.q, j.id) })
  end
end
for q in pairs(woken) do announce(q) end
return out
