-- Chirpy's Redis vocabulary, prepended to every script (see redis/scripts.rs).
--
-- ARGV[1] is always the store's settings, "lease_ttl_ms,initial_backoff_ms,
-- max_backoff_ms,jitter"; a script's own arguments start at ARGV[2]. Times
-- come from the Redis server's clock, so that every Chirpy instance agrees.
-- Times in Apalis's fields (run_at scores, done_at, locked_at) are whole Unix
-- seconds, as apalis-redis writes them; lease expiry is in milliseconds.

local SETTINGS = {}
for v in string.gmatch(ARGV[1], '[^,]+') do table.insert(SETTINGS, tonumber(v)) end
local LEASE_TTL_MS, INITIAL_BACKOFF_MS, MAX_BACKOFF_MS, JITTER = SETTINGS[1], SETTINGS[2], SETTINGS[3], SETTINGS[4]

local TIME = redis.call('TIME')
local NOW_MS = tonumber(TIME[1]) * 1000 + math.floor(tonumber(TIME[2]) / 1000)
local NOW_S = tonumber(TIME[1])

-- apalis-redis's keys (its Config) ...
local function k_data(q) return q .. ':data' end
local function k_meta(q, id) return q .. ':meta:' .. id end
local function k_active(q) return q .. ':active' end
local function k_scheduled(q) return q .. ':scheduled' end
local function k_inflight(q, w) return q .. ':inflight:' .. w end
local function k_done(q) return q .. ':done' end
local function k_dead(q) return q .. ':dead' end
local function k_workers(q) return q .. ':workers' end
local function k_worker_meta(q, w) return q .. ':workers:metadata:' .. w end
local function k_idem(q, key) return q .. ':idempotency:' .. key end
local K_APALIS_QUEUES = 'core:apalis:queues:list'
-- ... and Chirpy's own. "chirpy:q:" and "chirpy:g:" cannot be keys of an
-- Apalis queue named "chirpy" (their second part is never "q" or "g").
local function k_jobs(q) return 'chirpy:q:' .. q .. ':jobs' end
local function k_state(q, s) return 'chirpy:q:' .. q .. ':' .. s end
local function k_runat(q) return 'chirpy:q:' .. q .. ':runat' end
local function k_ready(q) return 'chirpy:q:' .. q .. ':ready' end
local function k_tail(q) return 'chirpy:q:' .. q .. ':tail' end
local function k_foreign(q) return 'chirpy:q:' .. q .. ':foreign' end
local K_QUEUES = 'chirpy:g:queues'
local K_LEASES = 'chirpy:g:leases'
local K_WORKERS = 'chirpy:g:workers'
local function k_worker(w) return 'chirpy:w:' .. w end
local CHANNEL = 'chirpy:jobs'

local STATES = { 'queued', 'running', 'succeeded', 'dead', 'canceled' }
-- The fields apalis-redis reads or writes in a job's meta hash: never
-- overwritten by a producer's metadata.
local APALIS_FIELDS = { attempts = true, max_attempts = true, status = true, idempotency_key = true,
  result = true, done_at = true, locked_at = true, locked_by = true }

local function lease_member(q, id) return q .. '/' .. id end

local function split(csv)
  local out = {}
  for v in string.gmatch(csv or '', '[^,]+') do table.insert(out, v) end
  return out
end

local function to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The creation time of a ULID, in whole seconds.
local CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
local function ulid_seconds(id)
  local ms = 0
  for i = 1, 10 do
    local c = string.find(CROCKFORD, string.upper(string.sub(id, i, i)), 1, true)
    if not c then return NOW_S end
    ms = ms * 32 + (c - 1)
  end
  return math.floor(ms / 1000)
end

-- A job's state from its meta hash, as apalis_sql::state_of reads a row,
-- except that PENDING and SCHEDULED are one index ("queued"), split by time
-- when read.
local function derive(m)
  if m['chirpy.canceled'] then return 'canceled' end
  local s = m.status
  if s == 'Done' then return 'succeeded' end
  if s == 'Killed' then return 'canceled' end
  if s == 'Running' or s == 'Queued' then return 'running' end
  if s == 'Failed' and (tonumber(m.attempts) or 0) >= (tonumber(m.max_attempts) or 25) then return 'dead' end
  return 'queued'
end

-- Puts `id` in the index of state `st` (and only there).
local function place(q, id, st, run_at)
  for _, s in ipairs(STATES) do
    if s ~= st then redis.call('ZREM', k_state(q, s), id) end
  end
  redis.call('ZADD', k_state(q, st), 0, id)
  if st == 'queued' then
    redis.call('ZADD', k_runat(q), run_at, id)
  else
    redis.call('ZREM', k_runat(q), id)
  end
  if st ~= 'running' then redis.call('SREM', k_foreign(q), id) end
end

-- Drops every trace of `id` from Chirpy's indexes: Apalis's vacuum deleted it.
local function forget(q, id)
  redis.call('ZREM', k_jobs(q), id)
  redis.call('ZREM', k_runat(q), id)
  redis.call('SREM', k_foreign(q), id)
  for _, s in ipairs(STATES) do redis.call('ZREM', k_state(q, s), id) end
end

-- The ready list's order: priority (higher first), then run_at, then id.
local function ready_member(m, id) return string.format('%012d|', tonumber(m['chirpy.run_at']) or 0) .. id end
local function ready_score(m) return -(tonumber(m['chirpy.priority']) or 0) end
local function id_of(member) return string.sub(member, 14) end

-- Reads a job's meta hash; nil when the job does not exist. A job Chirpy has
-- not seen yet (pushed by an Apalis producer) is adopted: given Chirpy's
-- fields and entered in the queue's indexes.
local function load(q, id)
  if redis.call('HEXISTS', k_data(q), id) == 0 then
    forget(q, id)
    return nil
  end
  local m = to_table(redis.call('HGETALL', k_meta(q, id)))
  if not m['chirpy.run_at'] then
    local score = redis.call('ZSCORE', k_scheduled(q), id)
    m['chirpy.run_at'] = tostring(score and math.floor(tonumber(score)) or ulid_seconds(id))
    m['chirpy.priority'] = m['chirpy.priority'] or '0'
    m.status = m.status or 'Pending'
    m.attempts = m.attempts or '0'
    m.max_attempts = m.max_attempts or '25'
    redis.call('HSET', k_meta(q, id), 'chirpy.run_at', m['chirpy.run_at'], 'chirpy.priority', m['chirpy.priority'],
      'status', m.status, 'attempts', m.attempts, 'max_attempts', m.max_attempts)
    redis.call('ZADD', k_jobs(q), 0, id)
    redis.call('ZADD', K_QUEUES, 0, q)
  end
  return m
end

-- Keeps the last id of the active list, to tell later whether anyone else
-- appended to it.
local function remember_tail(q)
  local tail = redis.call('LINDEX', k_active(q), -1)
  if tail then redis.call('SET', k_tail(q), tail) else redis.call('DEL', k_tail(q)) end
end

local settle

-- Jobs that left the active list behind Chirpy's back: an Apalis worker
-- fetched them. apalis-redis records nothing at fetch; like apalis-sqlite
-- and apalis-postgres, Chirpy marks them `Queued` (running).
local function taken_by_apalis(q, members)
  for _, member in ipairs(members) do
    local id = id_of(member)
    local m = load(q, id)
    if m and derive(m) == 'queued' then
      redis.call('HSET', k_meta(q, id), 'status', 'Queued')
      redis.call('SADD', k_foreign(q), id)
      place(q, id, 'running', 0)
    elseif m then
      settle(q, id)
    end
  end
end

-- Rebuilds the ready mirror from the active list, and sorts the list: after
-- an Apalis worker appended to it (its own promotions, releases, orphans).
local function rebuild(q)
  local old = redis.call('ZRANGE', k_ready(q), 0, -1)
  local ids = redis.call('LRANGE', k_active(q), 0, -1)
  local seen, entries = {}, {}
  for _, id in ipairs(ids) do
    if not seen[id] then
      seen[id] = true
      local m = load(q, id)
      if m and (m.status == 'Queued' or m.status == 'Running') and not m['chirpy.canceled'] then
        -- Re-enqueued by Apalis's orphan recovery, which leaves the status.
        redis.call('HSET', k_meta(q, id), 'status', 'Pending')
        redis.call('HDEL', k_meta(q, id), 'locked_by')
        m.status = 'Pending'
      end
      if m and derive(m) == 'queued' then
        table.insert(entries, { ready_score(m), ready_member(m, id) })
        place(q, id, 'queued', tonumber(m['chirpy.run_at']))
      elseif m then
        settle(q, id)
      end
    end
  end
  table.sort(entries, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  redis.call('DEL', k_active(q), k_ready(q))
  for _, e in ipairs(entries) do
    redis.call('ZADD', k_ready(q), e[1], e[2])
    redis.call('RPUSH', k_active(q), id_of(e[2]))
  end
  local gone = {}
  for _, member in ipairs(old) do
    if not seen[id_of(member)] then table.insert(gone, member) end
  end
  taken_by_apalis(q, gone)
  remember_tail(q)
end

-- Puts a queued job in the active list at its place in priority order, and
-- in the ready mirror. Apalis workers take from the head of the same list.
local function enqueue(q, id, m)
  local member, score = ready_member(m, id), ready_score(m)
  redis.call('ZADD', k_ready(q), score, member)
  local rank = redis.call('ZRANK', k_ready(q), member)
  local after = redis.call('ZRANGE', k_ready(q), rank + 1, rank + 1)[1]
  if not after then
    redis.call('RPUSH', k_active(q), id)
  elseif redis.call('LINSERT', k_active(q), 'BEFORE', id_of(after), id) < 0 then
    redis.call('RPUSH', k_active(q), id)
    rebuild(q)
    return
  end
  remember_tail(q)
end

-- Puts a queued job where it waits: the active list when due, else
-- Apalis's scheduled set (which Apalis workers promote from, too).
local function requeue(q, id, m)
  local run_at = tonumber(m['chirpy.run_at'])
  if run_at <= NOW_S then enqueue(q, id, m) else redis.call('ZADD', k_scheduled(q), run_at, id) end
  place(q, id, 'queued', run_at)
end

-- Takes a queued job out of the active list or the scheduled set.
local function unqueue(q, id, m)
  if redis.call('ZREM', k_scheduled(q), id) == 0 then
    if redis.call('ZREM', k_ready(q), ready_member(m, id)) == 1 then
      redis.call('LREM', k_active(q), 1, id)
      remember_tail(q)
    end
  end
end

-- The wait before the attempt after `attempt`, as RetryPolicy::backoff
-- computes it: initial * 2^(attempt-1), capped, half fixed and half jitter.
local function backoff_ms(m, attempt)
  local initial = tonumber(m['chirpy.retry.initial_backoff_ms']) or INITIAL_BACKOFF_MS
  local max = tonumber(m['chirpy.retry.max_backoff_ms']) or MAX_BACKOFF_MS
  local doublings = math.min(math.max(attempt - 1, 0), 31)
  local capped = math.min(initial * 2 ^ doublings, max)
  return math.floor(capped / 2 + (capped / 2) * JITTER)
end

-- Brings Chirpy's indexes (and Apalis's sets) in line with a job's meta
-- hash after an Apalis worker changed it, applying Chirpy's rules where
-- apalis-redis has its own: max_attempts and backoff instead of its fixed
-- 25 attempts one second apart, and cancels that stick. Idempotent; returns
-- the meta table, or nil when the job does not exist.
settle = function(q, id)
  local m = load(q, id)
  if not m then return nil end
  local st = derive(m)
  local meta = k_meta(q, id)
  if st == 'canceled' then
    if m['chirpy.canceled'] and m.status ~= 'Killed' then
      redis.call('HSET', meta, 'status', 'Killed')
      m.status = 'Killed'
    end
    redis.call('ZREM', k_scheduled(q), id)
    redis.call('SREM', k_done(q), id)
    if m['chirpy.canceled'] then redis.call('SREM', k_dead(q), id) end
  elseif st == 'dead' then
    redis.call('ZREM', k_scheduled(q), id)
    redis.call('SADD', k_dead(q), id)
  elseif st == 'succeeded' then
    redis.call('SADD', k_done(q), id)
  elseif st == 'queued' and m.status == 'Failed' and redis.call('ZSCORE', k_scheduled(q), id) then
    -- An Apalis worker's failed attempt, rescheduled by apalis-redis.
    local run_at = math.ceil((NOW_MS + backoff_ms(m, tonumber(m.attempts) or 1)) / 1000)
    redis.call('ZADD', k_scheduled(q), run_at, id)
    redis.call('HSET', meta, 'status', 'Pending', 'chirpy.run_at', run_at)
    m.status, m['chirpy.run_at'] = 'Pending', tostring(run_at)
    redis.call('SREM', k_foreign(q), id)
  elseif st == 'running' and not redis.call('ZSCORE', K_LEASES, lease_member(q, id)) then
    local w = m.locked_by
    if m.status == 'Running' and w and redis.call('SISMEMBER', k_inflight(q, w), id) == 0 then
      -- Its worker is gone and Apalis re-enqueued it.
      redis.call('HSET', meta, 'status', 'Pending')
      redis.call('HDEL', meta, 'locked_by')
      m.status, m.locked_by, st = 'Pending', nil, 'queued'
    else
      redis.call('SADD', k_foreign(q), id)
    end
  end
  if st == 'queued' then
    local score = redis.call('ZSCORE', k_scheduled(q), id)
    if score and tonumber(score) ~= tonumber(m['chirpy.run_at']) then
      m['chirpy.run_at'] = tostring(math.floor(tonumber(score)))
      redis.call('HSET', meta, 'chirpy.run_at', m['chirpy.run_at'])
    end
  end
  place(q, id, st, tonumber(m['chirpy.run_at']))
  return m
end

-- Brings a queue up to date before a script reads or changes it: follows
-- what Apalis workers did to the active list, and promotes due jobs from
-- the scheduled set into it.
local function sync(q)
  local len = redis.call('LLEN', k_active(q))
  local count = redis.call('ZCARD', k_ready(q))
  local in_step = false
  if len == 0 then
    if count > 0 then
      taken_by_apalis(q, redis.call('ZRANGE', k_ready(q), 0, -1))
      redis.call('DEL', k_ready(q))
    end
    redis.call('DEL', k_tail(q))
    in_step = true
  elseif count >= len and redis.call('GET', k_tail(q)) == redis.call('LINDEX', k_active(q), -1) then
    -- Only taken from the head since: by Apalis workers' fetches.
    if count > len then
      local gone = redis.call('ZRANGE', k_ready(q), 0, count - len - 1)
      redis.call('ZREMRANGEBYRANK', k_ready(q), 0, count - len - 1)
      taken_by_apalis(q, gone)
    end
    local head = redis.call('ZRANGE', k_ready(q), 0, 0)[1]
    in_step = head ~= nil and id_of(head) == redis.call('LINDEX', k_active(q), 0)
  end
  if not in_step then rebuild(q) end
  local due = redis.call('ZRANGEBYSCORE', k_scheduled(q), '-inf', NOW_S)
  for _, id in ipairs(due) do
    -- Settled first: an Apalis worker's failure may be due by apalis-redis's
    -- reckoning and not yet by Chirpy's, or be out of attempts.
    local m = settle(q, id)
    local score = redis.call('ZSCORE', k_scheduled(q), id)
    if m and derive(m) == 'queued' and score and tonumber(score) <= NOW_S then
      redis.call('ZREM', k_scheduled(q), id)
      enqueue(q, id, m)
    end
  end
end

-- Adopts the jobs of `q` an Apalis producer pushed, and forgets those Apalis
-- vacuumed: only when the job count says Chirpy's index differs.
local function adopt(q)
  if redis.call('HLEN', k_data(q)) == redis.call('ZCARD', k_jobs(q)) then return end
  for _, id in ipairs(redis.call('HKEYS', k_data(q))) do
    if not redis.call('ZSCORE', k_jobs(q), id) then settle(q, id) end
  end
  for _, id in ipairs(redis.call('ZRANGE', k_jobs(q), 0, -1)) do
    if redis.call('HEXISTS', k_data(q), id) == 0 then forget(q, id) end
  end
end

-- Settles the jobs running on Apalis workers, in case their outcome's event
-- was missed.
local function sweep(q)
  for _, id in ipairs(redis.call('SMEMBERS', k_foreign(q))) do settle(q, id) end
end

-- A job as scripts return it: {queue, id, payload, meta fields, lease expiry}.
local function reply(q, id)
  local expiry = redis.call('ZSCORE', K_LEASES, lease_member(q, id))
  return { q, id, redis.call('HGET', k_data(q), id), redis.call('HGETALL', k_meta(q, id)), expiry or false }
end

-- Whether `m` is held by worker `w` at attempt `attempt`: Chirpy's fence.
local function held(m, w, attempt)
  return not m['chirpy.canceled'] and (m.status == 'Running' or m.status == 'Queued') and m.locked_by == w
    and tonumber(m.attempts) == tonumber(attempt)
end

-- Wakes lease calls waiting on `q`, in every Chirpy instance.
local function announce(q) redis.call('PUBLISH', CHANNEL, q) end

-- Records worker `w` as alive, working `queues` (comma-separated; empty
-- keeps those it named before): in Chirpy's worker hash, and in Apalis's
-- per-queue workers sets, as a worker of kind "chirpy".
local function register(w, queues)
  local info = k_worker(w)
  redis.call('HSETNX', info, 'started_at', NOW_MS)
  if queues ~= '' then redis.call('HSET', info, 'queues', queues) end
  -- `seen`: every queue it ever named, where its jobs may be.
  local seen, all = {}, split(redis.call('HGET', info, 'seen'))
  for _, q in ipairs(all) do seen[q] = true end
  for _, q in ipairs(split(queues)) do
    if not seen[q] then
      seen[q] = true
      table.insert(all, q)
    end
  end
  redis.call('HSET', info, 'seen', table.concat(all, ','))
  redis.call('ZADD', K_WORKERS, NOW_MS, w)
  for _, q in ipairs(split(redis.call('HGET', info, 'queues'))) do
    redis.call('ZADD', k_workers(q), NOW_S, w)
    redis.call('HSET', k_worker_meta(q, w), 'backend_name', 'chirpy', 'service', 'chirpy')
    redis.call('ZADD', K_APALIS_QUEUES, 'GT', NOW_S, k_workers(q))
  end
end

-- Enters the queues Apalis workers registered in Chirpy's registry, when
-- they hold jobs.
local function register_apalis_queues()
  for _, key in ipairs(redis.call('ZRANGE', K_APALIS_QUEUES, 0, -1)) do
    local q = string.match(key, '^([%w_.-]+):workers$')
    if q and redis.call('ZSCORE', K_QUEUES, q) == false and redis.call('HLEN', k_data(q)) > 0 then
      redis.call('ZADD', K_QUEUES, 0, q)
    end
  end
end
