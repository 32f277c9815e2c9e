package chirpy

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// A PushOption sets a field of a pushed job; see [Client.Push].
type PushOption func(*pushConfig)

type pushConfig struct {
	req *chirpyv1.PushJobRequest
	err error
}

func (c *pushConfig) fail(field string, format string, args ...any) {
	if c.err == nil {
		c.err = status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
	}
}

// ScheduledAt makes the job wait until t; a zero or past t means now. The
// server keeps whole seconds on SQLite and rounds a future time up.
func ScheduledAt(t time.Time) PushOption {
	return func(c *pushConfig) {
		if !t.IsZero() {
			c.req.ScheduledAt = timestamppb.New(t)
		}
	}
}

// Priority sets the job's priority: zero or more, higher runs first within
// the queue. The default is 0.
func Priority(p int) PushOption {
	return func(c *pushConfig) {
		if p < 0 || p > math.MaxInt32 {
			c.fail("priority", "%d is out of range", p)
			return
		}
		c.req.Priority = int32(p)
	}
}

// MaxAttempts sets how many attempts the job gets before it is dead: 1 to
// 1000. The server's default is 25.
func MaxAttempts(n int) PushOption {
	return func(c *pushConfig) {
		if n < 0 || n > math.MaxInt32 {
			c.fail("max_attempts", "%d is out of range", n)
			return
		}
		c.req.MaxAttempts = int32(n)
	}
}

// IdempotencyKey deduplicates pushes within the queue: a push whose key
// already exists returns the existing job ([PushedJob.Deduplicated]) and
// creates nothing. At most 256 bytes.
func IdempotencyKey(key string) PushOption {
	return func(c *pushConfig) { c.req.IdempotencyKey = key }
}

// Metadata adds string pairs to the job, for producers and workers: at most
// 64 entries, keys `[A-Za-z0-9_.-]{1,128}` not starting with `chirpy.`,
// values at most 1024 bytes. Several Metadata options merge.
func Metadata(m map[string]string) PushOption {
	return func(c *pushConfig) {
		if c.req.Metadata == nil {
			c.req.Metadata = make(map[string]string, len(m))
		}
		maps.Copy(c.req.Metadata, m)
	}
}

// Backoff sets the job's own retry policy: the n-th retry waits about
// initial·2^(n-1), at most maximum, with jitter. initial must be at least
// one second. Without it the server's default applies.
func Backoff(initial, maximum time.Duration) PushOption {
	return func(c *pushConfig) {
		c.req.RetryPolicy = &chirpyv1.RetryPolicy{
			InitialBackoff: durationpb.New(initial),
			MaxBackoff:     durationpb.New(maximum),
		}
	}
}

// A ListOption narrows or pages [Client.List] and [Client.ListPage].
type ListOption func(*chirpyv1.ListJobsRequest)

// InState lists only the jobs in state s; [JobStateUnspecified] lists all.
func InState(s JobState) ListOption {
	return func(r *chirpyv1.ListJobsRequest) { r.State = chirpyv1.JobState(s) }
}

// PageSize sets how many jobs one call returns: 1 to 1000, or 0 for the
// server's default of 100. The server refuses any other size with
// INVALID_ARGUMENT.
func PageSize(n int) ListOption {
	// Saturated, not wrapped, so that a size beyond int32 stays out of range.
	return func(r *chirpyv1.ListJobsRequest) { r.PageSize = int32(min(max(n, math.MinInt32), math.MaxInt32)) }
}

// A WorkerOption configures a [Worker]; see [NewWorker].
type WorkerOption func(*workerConfig)

type workerConfig struct {
	concurrency   int
	batchSize     int
	prefetch      int
	longPoll      time.Duration
	workerID      string
	shutdownGrace time.Duration
	heartbeat     time.Duration
	logger        *slog.Logger
}

func defaultWorkerConfig() workerConfig {
	return workerConfig{
		concurrency: 10,
		longPoll:    20 * time.Second,
		heartbeat:   10 * time.Second,
		logger:      slog.Default(),
	}
}

// Concurrency sets how many handlers may run at once (default 10).
func Concurrency(n int) WorkerOption {
	return func(c *workerConfig) { c.concurrency = max(n, 1) }
}

// BatchSize sets the most jobs one lease call asks for (1 to 1000; the
// default is the concurrency plus the prefetch). A worker never asks for more
// jobs than it has room for.
func BatchSize(n int) WorkerOption {
	return func(c *workerConfig) { c.batchSize = min(max(n, 1), 1000) }
}

// Prefetch lets the worker hold up to n leased jobs beyond its concurrency,
// so that the next job starts without a round trip when a handler returns
// (default 0). Their leases are renewed while they wait, and a stopping
// worker hands them back unstarted (their attempt does not count).
func Prefetch(n int) WorkerOption {
	return func(c *workerConfig) { c.prefetch = min(max(n, 0), 1000) }
}

// LongPoll sets how long one lease call waits on the server when no job is
// ready (default 20 s; 1 s to 30 s). A push ends the wait at once, so a
// longer poll costs nothing in latency.
func LongPoll(d time.Duration) WorkerOption {
	return func(c *workerConfig) { c.longPoll = min(max(d, time.Second), 30*time.Second) }
}

// WorkerID sets the worker's id, unique among live workers:
// `[A-Za-z0-9_.:@-]{1,128}`. The default is the queue and the host name
// with a random suffix, such as `email@web-1.k3v9q2xa`.
func WorkerID(id string) WorkerOption {
	return func(c *workerConfig) { c.workerID = id }
}

// ShutdownGrace bounds how long running handlers may take to finish once
// the worker's context is canceled; then their contexts are canceled, with
// [ErrWorkerStopped] as the cause, and [Worker.Run] waits for them to
// return. Zero, the default, waits for them without a bound.
func ShutdownGrace(d time.Duration) WorkerOption {
	return func(c *workerConfig) { c.shutdownGrace = max(d, 0) }
}

// HeartbeatInterval sets how often to heartbeat until the server suggests
// an interval of its own (default 10 s; the server's suggestion, a third of
// its lease TTL, replaces it).
func HeartbeatInterval(d time.Duration) WorkerOption {
	return func(c *workerConfig) { c.heartbeat = clampHeartbeat(d) }
}

// Logger sets where the worker logs (default [slog.Default]).
func Logger(l *slog.Logger) WorkerOption {
	return func(c *workerConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

func clampHeartbeat(d time.Duration) time.Duration {
	return min(max(d, 200*time.Millisecond), time.Minute)
}
