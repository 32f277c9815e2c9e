package chirpy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

func TestWorkerCompletesJobsWithResults(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	var ids []string
	for i := range 5 {
		pushed, err := testClient.Push(ctx, queue, order{ID: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pushed.ID)
	}
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		var o order
		if err := job.Decode(&o); err != nil {
			return nil, chirpy.NonRetryable(err)
		}
		return map[string]any{"double": o.ID * 2, "attempt": job.Attempts}, nil
	}, chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	for i, id := range ids {
		job := waitState(t, queue, id, chirpy.JobStateSucceeded, 5*time.Second)
		var result struct{ Double, Attempt int }
		if err := job.DecodeResult(&result); err != nil {
			t.Fatal(err)
		}
		if result.Double != 2*i || result.Attempt != 1 || job.Attempts != 1 || job.FinishedAt.IsZero() {
			t.Errorf("job %d: result %s, attempts %d", i, job.Result, job.Attempts)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerRetriesFailuresUntilDead(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	pushed, err := testClient.Push(ctx, queue, "x", chirpy.MaxAttempts(2))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var states []chirpy.JobState
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		calls.Add(1)
		return nil, fmt.Errorf("smtp timeout on attempt %d", job.Attempts)
	}, chirpy.Logger(testLogger()))
	runWorker(t, w)

	// The first failure is retried after the server's backoff (1 s here).
	eventually(t, 5*time.Second, "a retry to be scheduled", func() bool {
		job, err := testClient.Get(ctx, queue, pushed.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) == 0 || states[len(states)-1] != job.State {
			states = append(states, job.State)
		}
		return job.State == chirpy.JobStateScheduled || job.State == chirpy.JobStateDead
	})
	job := waitState(t, queue, pushed.ID, chirpy.JobStateDead, 6*time.Second)
	if job.Attempts != 2 || calls.Load() != 2 || job.LastError != "smtp timeout on attempt 2" {
		t.Errorf("dead job: attempts %d, calls %d, last error %q", job.Attempts, calls.Load(), job.LastError)
	}
	if !slices.Contains(states, chirpy.JobStateScheduled) {
		t.Errorf("states seen %v, want a SCHEDULED retry", states)
	}
}

func TestWorkerNonRetryableAndRetryAfter(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	final, err := testClient.Push(ctx, queue, "final", chirpy.MaxAttempts(5))
	if err != nil {
		t.Fatal(err)
	}
	later, err := testClient.Push(ctx, queue, "later")
	if err != nil {
		t.Fatal(err)
	}
	panics, err := testClient.Push(ctx, queue, "panic", chirpy.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		var kind string
		_ = job.Decode(&kind)
		switch kind {
		case "final":
			return nil, fmt.Errorf("wrapped: %w", chirpy.NonRetryable(errors.New("no such user")))
		case "later":
			return nil, chirpy.RetryAfter(errors.New("rate limited"), time.Minute)
		default:
			panic("handler bug")
		}
	}, chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	job := waitState(t, queue, final.ID, chirpy.JobStateDead, 5*time.Second)
	if job.Attempts != 1 || job.MaxAttempts != 1 || job.LastError != "wrapped: no such user" {
		t.Errorf("non-retryable job: attempts %d of %d, last error %q", job.Attempts, job.MaxAttempts, job.LastError)
	}
	job = waitState(t, queue, later.ID, chirpy.JobStateScheduled, 5*time.Second)
	if wait := time.Until(job.ScheduledAt); wait < 50*time.Second || wait > 61*time.Second {
		t.Errorf("retry after a minute scheduled in %v", wait)
	}
	if job.LastError != "rate limited" {
		t.Errorf("last error %q", job.LastError)
	}
	job = waitState(t, queue, panics.ID, chirpy.JobStateDead, 5*time.Second)
	if job.LastError != "panic: handler bug" {
		t.Errorf("a panic's error: %q", job.LastError)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerCancelReachesHandler(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	pushed, err := testClient.Push(ctx, queue, "long")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	causes := make(chan error, 1)
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return "finished anyway", nil
	}, chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	<-started
	if _, err := testClient.Cancel(ctx, queue, pushed.ID); err != nil {
		t.Fatal(err)
	}
	// The next heartbeat (every second here) brings the news.
	select {
	case cause := <-causes:
		if !errors.Is(cause, chirpy.ErrJobCanceled) {
			t.Errorf("cause %v, want ErrJobCanceled", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not canceled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The handler's result was dropped.
	job, err := testClient.Get(ctx, queue, pushed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != chirpy.JobStateCanceled || job.Result != nil {
		t.Errorf("canceled job: %v, result %s", job.State, job.Result)
	}
}

func TestWorkerRespectsConcurrency(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	items := make([]chirpy.PushItem, 9)
	for i := range items {
		items[i] = chirpy.PushItem{Payload: i}
	}
	if _, err := testClient.BatchPush(ctx, queue, items); err != nil {
		t.Fatal(err)
	}
	var running, most, done atomic.Int32
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(150 * time.Millisecond)
		done.Add(1)
		return nil, nil
	}, chirpy.Concurrency(3), chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	eventually(t, 10*time.Second, "9 jobs done", func() bool { return done.Load() == 9 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if most.Load() != 3 {
		t.Errorf("at most %d handlers ran at once, want 3", most.Load())
	}
	for job, err := range testClient.List(ctx, queue) {
		if err != nil {
			t.Fatal(err)
		}
		if job.State != chirpy.JobStateSucceeded {
			t.Errorf("job %s is %v", job.ID, job.State)
		}
	}
}

func TestWorkerBatchesOutcomes(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	// A client that counts the calls it makes.
	var mu sync.Mutex
	calls := map[string]int{}
	conn, err := grpc.NewClient(testAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			mu.Lock()
			calls[method[strings.LastIndex(method, "/")+1:]]++
			mu.Unlock()
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := chirpy.NewClient(conn)

	const n = 20
	items := make([]chirpy.PushItem, n)
	for i := range items {
		items[i] = chirpy.PushItem{Payload: i}
	}
	if _, err := client.BatchPush(ctx, queue, items); err != nil {
		t.Fatal(err)
	}
	// Every handler returns at once when all have started: their outcomes
	// are ready together.
	var started sync.WaitGroup
	started.Add(n)
	gate := make(chan struct{})
	go func() {
		started.Wait()
		close(gate)
	}()
	w := chirpy.NewWorker(client, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		started.Done()
		<-gate
		var i int
		_ = job.Decode(&i)
		if i%2 == 1 {
			return nil, errors.New("odd")
		}
		return i, nil
	}, chirpy.Concurrency(n), chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	eventually(t, 10*time.Second, "every outcome recorded", func() bool {
		for job, err := range testClient.List(ctx, queue) {
			if err != nil {
				t.Fatal(err)
			}
			if job.State == chirpy.JobStateRunning || job.State == chirpy.JobStatePending {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("calls: %v", calls)
	reports := calls["CompleteJob"] + calls["BatchCompleteJobs"] + calls["FailJob"] + calls["BatchFailJobs"]
	if calls["BatchCompleteJobs"] == 0 || calls["BatchFailJobs"] == 0 || reports >= n {
		t.Errorf("%d calls for %d outcomes, want batches: %v", reports, n, calls)
	}
}

func TestWorkerGracefulShutdownReleasesUnstartedJobs(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	items := make([]chirpy.PushItem, 4)
	for i := range items {
		items[i] = chirpy.PushItem{Payload: i}
	}
	pushed, err := testClient.BatchPush(ctx, queue, items)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 4)
	finish := make(chan struct{})
	var handlerCtxErr atomic.Value
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		started <- job.ID
		<-finish
		handlerCtxErr.Store(fmt.Sprint(ctx.Err()))
		return "done", nil
	}, chirpy.Concurrency(1), chirpy.Prefetch(3), chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	first := <-started
	if first != pushed[0].ID {
		t.Errorf("started %s first, want the oldest, %s", first, pushed[0].ID)
	}
	// One runs and three wait, all leased.
	eventually(t, 5*time.Second, "4 jobs leased", func() bool {
		n := 0
		for _, err := range testClient.List(ctx, queue, chirpy.InState(chirpy.JobStateRunning)) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n == 4
	})

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The running handler may finish: Run waits for it.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned while a handler ran: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	close(finish)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := handlerCtxErr.Load(); got != "<nil>" {
		t.Errorf("the running handler's context: %v, want live during the shutdown", got)
	}
	if len(started) != 0 {
		t.Errorf("a waiting job started during the shutdown")
	}

	for i, p := range pushed {
		job, err := testClient.Get(ctx, queue, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if job.State != chirpy.JobStateSucceeded {
				t.Errorf("the running job is %v, want SUCCEEDED", job.State)
			}
			continue
		}
		if job.State != chirpy.JobStatePending || job.Attempts != 0 {
			t.Errorf("unstarted job %d is %v with %d attempts, want PENDING with 0", i, job.State, job.Attempts)
		}
	}
}

func TestWorkerShutdownGraceCancelsHandlers(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	pushed, err := testClient.Push(ctx, queue, "stuck")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	w := chirpy.NewWorker(testClient, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}, chirpy.ShutdownGrace(200*time.Millisecond), chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	<-started
	begun := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begun); took < 200*time.Millisecond || took > 3*time.Second {
		t.Errorf("shutdown took %v with a grace of 200ms", took)
	}
	// The handler's error is reported: a retry.
	job, err := testClient.Get(ctx, queue, pushed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != chirpy.JobStateScheduled && job.State != chirpy.JobStatePending || job.LastError != chirpy.ErrWorkerStopped.Error() {
		t.Errorf("job after the grace period: %v, last error %q", job.State, job.LastError)
	}
}

func TestWorkerIsListed(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	w := chirpy.NewWorker(testClient, queue, func(context.Context, *chirpy.Job) (any, error) { return nil, nil },
		chirpy.Logger(testLogger()))
	if !strings.HasPrefix(w.ID(), queue+"@") {
		t.Errorf("default id %q", w.ID())
	}
	runWorker(t, w)
	named := chirpy.NewWorker(testClient, queue, func(context.Context, *chirpy.Job) (any, error) { return nil, nil },
		chirpy.WorkerID("billing:7@eu-1"), chirpy.Logger(testLogger()))
	runWorker(t, named)

	for _, id := range []string{w.ID(), named.ID()} {
		eventually(t, 5*time.Second, "worker "+id+" to be listed", func() bool {
			workers, err := testClient.Workers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(workers, func(info *chirpy.WorkerInfo) bool { return info.ID == id })
			if i < 0 {
				return false
			}
			info := workers[i]
			if !slices.Equal(info.Queues, []string{queue}) || info.Kind != "chirpy" || info.LastHeartbeatAt.IsZero() {
				t.Errorf("worker info %+v", info)
			}
			return true
		})
	}
}

func TestWorkerRefusedForGood(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	for _, tc := range []struct {
		name  string
		queue string
		opts  []chirpy.WorkerOption
	}{
		{"bad queue name", "no spaces allowed", nil},
		{"bad worker id", testQueue(t), []chirpy.WorkerOption{chirpy.WorkerID("no spaces allowed")}},
	} {
		w := chirpy.NewWorker(testClient, tc.queue, func(context.Context, *chirpy.Job) (any, error) { return nil, nil },
			append(tc.opts, chirpy.Logger(testLogger()))...)
		begun := time.Now()
		err := w.Run(ctx)
		if !chirpy.IsInvalidArgument(err) {
			t.Errorf("%s: Run returned %v, want INVALID_ARGUMENT", tc.name, err)
		}
		if time.Since(begun) > 2*time.Second {
			t.Errorf("%s: Run took %v to give up", tc.name, time.Since(begun))
		}
		if err := w.Run(ctx); err == nil {
			t.Errorf("%s: a second Run succeeded", tc.name)
		}
	}
}

func TestWorkerLostLeaseReachesHandler(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	// A worker whose heartbeats fail while block is set.
	var block atomic.Bool
	conn, err := grpc.NewClient(testAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if block.Load() && strings.HasSuffix(method, "/Heartbeat") {
				return status.Error(codes.Unavailable, "blocked by the test")
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	pushed, err := testClient.Push(ctx, queue, "slow")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	causes := make(chan error, 1)
	w := chirpy.NewWorker(chirpy.NewClient(conn), queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return "too late", nil
	}, chirpy.Concurrency(1), chirpy.Logger(testLogger())) // so that only the other worker leases it again
	stop := runWorker(t, w)
	<-started
	block.Store(true)

	// The lease (3 s here) expires and another worker takes the job.
	var leaseID string
	eventually(t, 10*time.Second, "the job to be leased again", func() bool {
		resp, err := testClient.WorkerService().LeaseJobs(ctx, &chirpyv1.LeaseJobsRequest{
			WorkerId: "thief", Queues: []string{queue}, Wait: durationpb.New(time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetLeases()) == 0 {
			return false
		}
		leaseID = resp.GetLeases()[0].GetLeaseId()
		return true
	})
	block.Store(false)
	select {
	case cause := <-causes:
		if !errors.Is(cause, chirpy.ErrLeaseLost) {
			t.Errorf("cause %v, want ErrLeaseLost", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not canceled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The first worker's outcome was dropped; the job is the thief's.
	job, err := testClient.Get(ctx, queue, pushed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != chirpy.JobStateRunning || job.Lease == nil || job.Lease.WorkerID != "thief" || job.Attempts != 2 {
		t.Errorf("job after the lost lease: %v, lease %+v, attempts %d", job.State, job.Lease, job.Attempts)
	}
	if _, err := testClient.WorkerService().CompleteJob(ctx, &chirpyv1.CompleteJobRequest{
		Queue: queue, Id: pushed.ID, LeaseId: leaseID, Result: nil,
	}); err != nil {
		t.Errorf("the thief's completion: %v", err)
	}
}
