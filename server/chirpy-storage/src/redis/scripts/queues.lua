-- Lists the queues that hold jobs, by name after a cursor, with per-state
-- counts. ARGV[2]: the name to start after ('' for the start), ARGV[3]: how
-- many at most. Returns {now_ms, {name, pending, scheduled, running,
-- succeeded, dead, canceled}...}.
local after, limit = ARGV[2], tonumber(ARGV[3])
register_apalis_queues()
local out = { NOW_MS }
local from = after == '' and '-' or '(' .. after
while #out - 1 < limit do
  local names = redis.call('ZRANGEBYLEX', K_QUEUES, from, '+', 'LIMIT', 0, 128)
  if #names == 0 then break end
  for _, q in ipairs(names) do
    from = '(' .. q
    sync(q)
    adopt(q)
    sweep(q)
    if redis.call('ZCARD', k_jobs(q)) > 0 then
      local queued = redis.call('ZCARD', k_state(q, 'queued'))
      local scheduled = redis.call('ZCOUNT', k_runat(q), '(' .. NOW_S, '+inf')
      table.insert(out, { q, queued - scheduled, scheduled, redis.call('ZCARD', k_state(q, 'running')),
        redis.call('ZCARD', k_state(q, 'succeeded')), redis.call('ZCARD', k_state(q, 'dead')),
        redis.call('ZCARD', k_state(q, 'canceled')) })
      if #out - 1 >= limit then break end
    end
  end
end
return out
