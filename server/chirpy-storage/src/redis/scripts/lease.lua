-- Leases up to ARGV[3] ready jobs of the queues ARGV[4..] to worker ARGV[2]:
-- highest priority first, then earliest run_at, then id, across the queues.
-- Each lease counts an attempt, puts the job in the worker's in-flight set
-- (as apalis-redis's fetch does) and in Chirpy's lease expiry set.
-- Returns {now_ms, job...}.
local w, max = ARGV[2], tonumber(ARGV[3])
local queues = {}
for i = 4, #ARGV do
  table.insert(queues, ARGV[i])
  sync(ARGV[i])
end
local out = { NOW_MS }
local tries = 0
while #out - 1 < max and tries < max + 64 do
  tries = tries + 1
  local q, score, member
  for _, name in ipairs(queues) do
    local head = redis.call('ZRANGE', k_ready(name), 0, 0, 'WITHSCORES')
    if head[1] then
      local s = tonumber(head[2])
      if not q or s < score or (s == score and head[1] < member) then q, score, member = name, s, head[1] end
    end
  end
  if not q then break end
  local id = redis.call('LPOP', k_active(q))
  redis.call('ZREM', k_ready(q), member)
  if id ~= id_of(member) then
    -- Out of step with the list (cannot happen after sync): put both back
    -- and rebuild.
    if id then redis.call('LPUSH', k_active(q), id) end
    redis.call('ZADD', k_ready(q), score, member)
    rebuild(q)
  else
    local m = load(q, id)
    if m and derive(m) == 'queued' then
      redis.call('HINCRBY', k_meta(q, id), 'attempts', 1)
      redis.call('HSET', k_meta(q, id), 'status', 'Running', 'locked_by', w, 'locked_at', NOW_S)
      redis.call('HDEL', k_meta(q, id), 'done_at')
      redis.call('SADD', k_inflight(q, w), id)
      redis.call('ZADD', K_LEASES, NOW_MS + LEASE_TTL_MS, lease_member(q, id))
      place(q, id, 'running', 0)
      table.insert(out, reply(q, id))
    elseif m then
      settle(q, id)
    end
  end
end
for _, name in ipairs(queues) do remember_tail(name) end
return out
