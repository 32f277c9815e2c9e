-- Lists a queue's jobs in id order after a cursor, optionally in one state.
-- ARGV[2]: queue, ARGV[3]: state ('' for all, or pending, scheduled,
-- running, succeeded, dead, canceled), ARGV[4]: the id to start after ('' for
-- the start), ARGV[5]: how many at most. Returns {now_ms, job...}.
local q, state, after, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
sync(q)
adopt(q)
sweep(q)
local index = k_jobs(q)
if state == 'pending' or state == 'scheduled' then
  index = k_state(q, 'queued')
elseif state ~= '' then
  index = k_state(q, state)
end
local out = { NOW_MS }
local from = after == '' and '-' or '(' .. after
while #out - 1 < limit do
  local ids = redis.call('ZRANGEBYLEX', index, from, '+', 'LIMIT', 0, 256)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    from = '(' .. id
    -- Each entry is checked against the job itself: an index entry an
    -- Apalis worker made stale is moved, not listed.
    local m = settle(q, id)
    if m then
      local st = derive(m)
      if st == 'queued' then st = tonumber(m['chirpy.run_at']) <= NOW_S and 'pending' or 'scheduled' end
      if state == '' or st == state then
        table.insert(out, reply(q, id))
        if #out - 1 >= limit then break end
      end
    end
  end
end
return out
