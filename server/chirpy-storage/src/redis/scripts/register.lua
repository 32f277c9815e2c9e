-- Records a worker as alive. ARGV[2]: worker, ARGV[3]: queues
-- (comma-separated). Returns now_ms.
register(ARGV[2], ARGV[3])
return NOW_MS
