package chirpy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// A Handler runs one job. A nil error completes the job with result (any
// value [encoding/json] can marshal, nil included) as its result. An error is
// a failed attempt, retried after a backoff while attempts are left; wrap it
// with [NonRetryable] to send the job to the failure queue at once, or with
// [RetryAfter] to choose the wait. A panic is a failed attempt too.
//
// ctx is canceled when the job is canceled on the server or its lease is
// lost (then the outcome is dropped; [context.Cause] tells which), or when
// the worker's shutdown grace period runs out. Handlers must honor it.
type Handler func(ctx context.Context, job *Job) (result any, err error)

// A Worker runs a [Handler] for the jobs of one queue; see [NewWorker] and
// [Worker.Run].
//
// It leases jobs with a long poll, asking for no more than it has room for
// ([Concurrency] running plus [Prefetch] waiting), and runs each handler on
// a goroutine of its own. Outcomes are reported as soon as handlers return:
// one call for one outcome, BatchCompleteJobs and BatchFailJobs for those
// that are ready together. A heartbeat, at the interval the server asks for,
// renews the leases of the jobs held and delivers cancellations. A QUIET
// directive from the server pauses leasing until it says RUN again. Errors a
// retry may cure (the server restarting, a network blip) are logged and
// retried with a backoff; they never end Run.
type Worker struct {
	client  *Client
	queue   string
	handler Handler
	cfg     workerConfig
	id      string
	log     *slog.Logger

	started  atomic.Bool
	handlers sync.WaitGroup
	// base is the parent of the handlers' contexts: it outlives Run's
	// context, so that running handlers may finish, and is canceled when
	// the shutdown grace period runs out.
	base context.Context
	// wake is signaled when room frees up or leasing resumes.
	wake chan struct{}
	// outboxReady is signaled when an outcome is queued.
	outboxReady chan struct{}

	mu sync.Mutex
	// held maps the id of each job leased and not yet reported (or handed
	// back) to its attempt; heartbeats renew their leases.
	held map[string]*attempt
	// waiting holds leased jobs not started yet, in lease order.
	waiting []*attempt
	// running counts the handlers that run.
	running int
	// outbox holds the outcomes waiting to be reported.
	outbox []outcome
	// stopping is set once Run stops leasing: no waiting job starts.
	stopping bool
	// quiet is set while the server asks for no leasing.
	quiet bool
	// interval is how often to heartbeat.
	interval time.Duration
}

// An attempt is one lease of one job.
type attempt struct {
	job     *Job
	leaseID string
	// cancel cancels the handler's context; nil until it starts.
	cancel context.CancelCauseFunc
	// dropped is set when the job was canceled, lost or handed back: its
	// outcome must not be reported.
	dropped bool
}

// callTimeout bounds the worker's calls other than LeaseJobs.
const callTimeout = 10 * time.Second

// NewWorker returns a worker that runs handler for the jobs of queue,
// leased through client. Call [Worker.Run] to start it. It panics if client
// or handler is nil.
func NewWorker(client *Client, queue string, handler Handler, opts ...WorkerOption) *Worker {
	if client == nil || handler == nil {
		panic("chirpy: NewWorker needs a client and a handler")
	}
	cfg := defaultWorkerConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.batchSize == 0 {
		cfg.batchSize = min(cfg.concurrency+cfg.prefetch, 1000)
	}
	id := cfg.workerID
	if id == "" {
		id = defaultWorkerID(queue)
	}
	return &Worker{
		client:      client,
		queue:       queue,
		handler:     handler,
		cfg:         cfg,
		id:          id,
		log:         cfg.logger.With("worker", id, "queue", queue),
		wake:        make(chan struct{}, 1),
		outboxReady: make(chan struct{}, 1),
		held:        make(map[string]*attempt),
		interval:    cfg.heartbeat,
	}
}

// ID returns the worker's id, as listed by [Client.Workers].
func (w *Worker) ID() string { return w.id }

// defaultWorkerID is the queue and the host name, with the characters a
// worker id does not allow replaced, and a random suffix so that replicas
// stay distinct: `email@web-1.k3v9q2xa`.
func defaultWorkerID(queue string) string {
	host, _ := os.Hostname()
	base := strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:@-", r)) {
			return r
		}
		return '-'
	}, queue+"@"+host)
	if len(base) > 110 {
		base = base[:110]
	}
	return base + "." + strings.ToLower(rand.Text()[:8])
}

// Run registers the worker and works the queue until ctx is canceled, then
// shuts down gracefully: it stops leasing, hands back the jobs it leased but
// did not start, lets the running handlers finish (see [ShutdownGrace]),
// reports their outcomes, and returns nil.
//
// Errors a retry may cure never end Run. It returns an error only when the
// server refuses the worker for good (an invalid queue name or worker id:
// INVALID_ARGUMENT); it still shuts down gracefully first. A Worker runs
// once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("chirpy: Worker.Run called more than once")
	}
	if err := w.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("chirpy: worker %s: %w", w.id, err)
	}
	w.log.Info("worker started", "concurrency", w.cfg.concurrency, "prefetch", w.cfg.prefetch)

	base, stopHandlers := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopHandlers(nil)
	w.base = base

	handlersDone := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		w.report(handlersDone)
	}()
	beating, stopBeating := context.WithCancel(context.WithoutCancel(ctx))
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		w.heartbeats(beating)
	}()

	err := w.lease(ctx)
	if err != nil {
		w.log.Error("cannot lease jobs; stopping", "cause", err)
		err = fmt.Errorf("chirpy: worker %s: %w", w.id, err)
	}

	w.release()
	w.drain(stopHandlers)
	close(handlersDone)
	<-reported
	stopBeating()
	<-beaten
	w.log.Info("worker stopped")
	return err
}

// register sends the first heartbeat, retrying until the server answers.
func (w *Worker) register(ctx context.Context) error {
	var pause backoff
	for {
		err := w.heartbeat(ctx)
		if err == nil || ctx.Err() != nil || permanent(err) {
			return err
		}
		d := pause.next()
		w.log.Warn("cannot register; retrying", "cause", err, "retry_in", d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// lease leases jobs and starts them until ctx is done (nil) or the server
// refuses the request for good (its error).
func (w *Worker) lease(ctx context.Context) error {
	var pause backoff
	for {
		n, ok := w.room(ctx)
		if !ok {
			return nil
		}
		wait := w.cfg.longPoll
		// The deadline leaves the server time to answer after the wait.
		callCtx, cancel := context.WithTimeout(ctx, wait+callTimeout)
		resp, err := w.client.workers.LeaseJobs(callCtx, &chirpyv1.LeaseJobsRequest{
			WorkerId: w.id,
			Queues:   []string{w.queue},
			MaxJobs:  int32(n),
			Wait:     durationpb.New(wait),
		})
		cancel()
		if err == nil {
			pause.reset()
			w.accept(resp.GetLeases())
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if permanent(err) {
			return err
		}
		d := pause.next()
		w.log.Warn("cannot lease jobs; retrying", "cause", err, "retry_in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// room waits until the worker may lease, and returns how many jobs to ask
// for; false once ctx is done.
func (w *Worker) room(ctx context.Context) (int, bool) {
	for ctx.Err() == nil {
		w.mu.Lock()
		free := w.cfg.concurrency + w.cfg.prefetch - w.running - len(w.waiting)
		quiet := w.quiet
		w.mu.Unlock()
		if !quiet && free > 0 {
			return min(free, w.cfg.batchSize), true
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		}
	}
	return 0, false
}

// signal wakes the lease loop if it waits for room.
func (w *Worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// accept holds the leased jobs and starts as many as there are free
// handler slots; the others wait.
func (w *Worker) accept(leases []*chirpyv1.LeasedJob) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, leased := range leases {
		job := jobFromProto(leased.GetJob())
		if job == nil {
			continue
		}
		a := &attempt{job: job, leaseID: leased.GetLeaseId()}
		if old := w.held[job.ID]; old != nil {
			// Leased again: the older lease expired.
			w.dropLocked(old, ErrLeaseLost)
		}
		w.held[job.ID] = a
		if w.running < w.cfg.concurrency {
			w.running++
			w.startLocked(a)
		} else {
			w.waiting = append(w.waiting, a)
		}
	}
}

// startLocked runs a's handler on a goroutine of its own; w.running
// already counts it.
func (w *Worker) startLocked(a *attempt) {
	ctx, cancel := context.WithCancelCause(w.base)
	a.cancel = cancel
	w.handlers.Add(1)
	go w.run(ctx, a)
}

// run runs one handler, starts the next waiting job in its slot, and queues
// the outcome.
func (w *Worker) run(ctx context.Context, a *attempt) {
	defer w.handlers.Done()
	result, err := w.call(ctx, a.job)
	a.cancel(nil)
	o := outcomeOf(a, result, err)

	w.mu.Lock()
	if !w.stopping && len(w.waiting) > 0 {
		next := w.waiting[0]
		w.waiting = w.waiting[1:]
		w.startLocked(next)
	} else {
		w.running--
	}
	if !a.dropped {
		w.outbox = append(w.outbox, o)
	}
	w.mu.Unlock()
	w.signal()
	select {
	case w.outboxReady <- struct{}{}:
	default:
	}
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, job *Job) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("handler panicked", "job", job.ID, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	return w.handler(ctx, job)
}

// dropLocked forgets a: its handler's context is canceled with cause, or it
// never starts, and its outcome is not reported.
func (w *Worker) dropLocked(a *attempt, cause error) {
	a.dropped = true
	if w.held[a.job.ID] == a {
		delete(w.held, a.job.ID)
	}
	if a.cancel != nil {
		a.cancel(cause)
		return
	}
	for i, waiting := range w.waiting {
		if waiting == a {
			w.waiting = append(w.waiting[:i], w.waiting[i+1:]...)
			break
		}
	}
	w.signal()
}

// forget removes a reported attempt from the jobs held.
func (w *Worker) forget(a *attempt) {
	w.mu.Lock()
	if w.held[a.job.ID] == a {
		delete(w.held, a.job.ID)
	}
	w.mu.Unlock()
}

// release stops starting waiting jobs and hands them back to the server:
// they are pending again and their attempt does not count.
func (w *Worker) release() {
	w.mu.Lock()
	w.stopping = true
	unstarted := w.waiting
	w.waiting = nil
	for _, a := range unstarted {
		w.dropLocked(a, nil)
	}
	w.mu.Unlock()
	for chunk := range slices.Chunk(unstarted, 1000) {
		req := &chirpyv1.ReleaseJobsRequest{Jobs: make([]*chirpyv1.JobLease, len(chunk))}
		for i, a := range chunk {
			req.Jobs[i] = &chirpyv1.JobLease{Queue: a.job.Queue, Id: a.job.ID, LeaseId: a.leaseID}
		}
		var resp *chirpyv1.ReleaseJobsResponse
		err := w.retrying("hand back unstarted jobs", func(ctx context.Context) (err error) {
			resp, err = w.client.workers.ReleaseJobs(ctx, req)
			return err
		})
		if err != nil {
			w.log.Warn("cannot hand back unstarted jobs; their leases will expire", "jobs", len(chunk), "cause", err)
			continue
		}
		w.logRefusals("release", resp.GetResults())
		w.log.Info("handed back unstarted jobs", "jobs", len(chunk))
	}
}

// drain waits for the running handlers, canceling their contexts once the
// shutdown grace period runs out.
func (w *Worker) drain(stopHandlers context.CancelCauseFunc) {
	done := make(chan struct{})
	go func() {
		w.handlers.Wait()
		close(done)
	}()
	if w.cfg.shutdownGrace <= 0 {
		<-done
		return
	}
	timer := time.NewTimer(w.cfg.shutdownGrace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		w.log.Warn("shutdown grace period over; canceling running handlers")
		stopHandlers(ErrWorkerStopped)
		<-done
	}
}

// backoff is an exponential backoff with jitter, from 200 ms to 5 s.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 200*time.Millisecond), 5*time.Second)
	return b.d/2 + mathrand.N(b.d/2+1)
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits for d, or until ctx is done (false).
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
