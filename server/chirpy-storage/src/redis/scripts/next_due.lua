-- When the earliest job of the queues ARGV[2..] waiting for its time becomes
-- due. Returns {now_ms, Unix seconds or false}.
local best = false
for i = 2, #ARGV do
  local first = redis.call('ZRANGEBYSCORE', k_scheduled(ARGV[i]), '(' .. NOW_S, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if first[2] and (not best or tonumber(first[2]) < best) then best = tonumber(first[2]) end
end
return { NOW_MS, best }
