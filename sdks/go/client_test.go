package chirpy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

type order struct {
	ID    int      `json:"id"`
	Items []string `json:"items"`
}

func TestPushAndGet(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	later := time.Now().Add(time.Hour)
	pushed, err := testClient.Push(ctx, queue, order{ID: 7, Items: []string{"tea"}},
		chirpy.ScheduledAt(later),
		chirpy.Priority(3),
		chirpy.MaxAttempts(4),
		chirpy.Metadata(map[string]string{"tenant": "acme"}),
		chirpy.Metadata(map[string]string{"source": "test"}),
		chirpy.Backoff(2*time.Second, time.Minute),
	)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Deduplicated {
		t.Error("a first push is not deduplicated")
	}
	if len(pushed.ID) != 26 || pushed.Queue != queue || pushed.State != chirpy.JobStateScheduled ||
		pushed.Priority != 3 || pushed.MaxAttempts != 4 || pushed.Attempts != 0 {
		t.Errorf("pushed job: %+v", pushed.Job)
	}
	if pushed.ScheduledAt.Before(later.Truncate(time.Second)) || pushed.ScheduledAt.After(later.Add(time.Second)) {
		t.Errorf("scheduled at %v, want about %v", pushed.ScheduledAt, later)
	}
	if pushed.RetryPolicy == nil || *pushed.RetryPolicy != (chirpy.RetryPolicy{InitialBackoff: 2 * time.Second, MaxBackoff: time.Minute}) {
		t.Errorf("retry policy %+v", pushed.RetryPolicy)
	}

	job, err := testClient.Get(ctx, queue, pushed.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got order
	if err := job.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.ID != 7 || !slices.Equal(got.Items, []string{"tea"}) {
		t.Errorf("payload %s decoded as %+v", job.Payload, got)
	}
	if string(job.Payload) != `{"id":7,"items":["tea"]}` {
		t.Errorf("payload JSON %s", job.Payload)
	}
	if job.Metadata["tenant"] != "acme" || job.Metadata["source"] != "test" {
		t.Errorf("metadata %v", job.Metadata)
	}
	if job.CreatedAt.IsZero() || !job.StartedAt.IsZero() || !job.FinishedAt.IsZero() || job.Result != nil || job.Lease != nil {
		t.Errorf("fresh job: %+v", job)
	}
	if job.Proto().GetId() != job.ID {
		t.Error("Proto returns another job")
	}

	// Any JSON value is a payload; raw JSON goes as is.
	for _, payload := range []any{"text", 42, nil, []int{1, 2}, json.RawMessage(`{"raw":true}`)} {
		pushed, err := testClient.Push(ctx, queue, payload)
		if err != nil {
			t.Fatalf("push %v: %v", payload, err)
		}
		want, _ := json.Marshal(payload)
		if string(pushed.Payload) != string(want) {
			t.Errorf("payload %s, want %s", pushed.Payload, want)
		}
	}
}

func TestPushIdempotency(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	first, err := testClient.Push(ctx, queue, "a", chirpy.IdempotencyKey("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := testClient.Push(ctx, queue, "b", chirpy.IdempotencyKey("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Deduplicated || !again.Deduplicated || again.ID != first.ID || string(again.Payload) != `"a"` {
		t.Errorf("first %+v, again %+v", first, again)
	}
	if again.IdempotencyKey != "order-1" {
		t.Errorf("key %q", again.IdempotencyKey)
	}

	// Within one batch too, and against the queue.
	results, err := testClient.BatchPush(ctx, queue, []chirpy.PushItem{
		{Payload: 1, Options: []chirpy.PushOption{chirpy.IdempotencyKey("order-2")}},
		{Payload: 2, Options: []chirpy.PushOption{chirpy.IdempotencyKey("order-2")}},
		{Payload: 3, Options: []chirpy.PushOption{chirpy.IdempotencyKey("order-1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Deduplicated || !results[1].Deduplicated || results[1].ID != results[0].ID ||
		!results[2].Deduplicated || results[2].ID != first.ID {
		t.Errorf("batch results: %v %v %v", results[0], results[1], results[2])
	}
	if n := countJobs(t, queue); n != 2 {
		t.Errorf("%d jobs in the queue, want 2", n)
	}
}

func TestBatchPush(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	results, err := testClient.BatchPush(ctx, queue, []chirpy.PushItem{
		{Payload: order{ID: 1}},
		{Payload: order{ID: 2}, Options: []chirpy.PushOption{chirpy.Priority(9)}},
		{Payload: order{ID: 3}, Options: []chirpy.PushOption{chirpy.ScheduledAt(time.Now().Add(time.Hour))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results", len(results))
	}
	for i, r := range results {
		var o order
		if err := r.Decode(&o); err != nil || o.ID != i+1 || r.Queue != queue {
			t.Errorf("result %d: %+v (%v)", i, r.Job, err)
		}
	}
	if results[1].Priority != 9 || results[2].State != chirpy.JobStateScheduled || results[0].State != chirpy.JobStatePending {
		t.Errorf("options not applied: %v %v", results[1].Priority, results[2].State)
	}

	// All or nothing: one bad item stores none.
	_, err = testClient.BatchPush(ctx, queue, []chirpy.PushItem{
		{Payload: 4},
		{Payload: 5, Options: []chirpy.PushOption{chirpy.MaxAttempts(5000)}},
	})
	if !chirpy.IsInvalidArgument(err) {
		t.Errorf("a batch with a bad item: %v", err)
	}
	if n := countJobs(t, queue); n != 3 {
		t.Errorf("%d jobs after a refused batch, want 3", n)
	}
}

func TestListIteratesPages(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	items := make([]chirpy.PushItem, 25)
	for i := range items {
		items[i] = chirpy.PushItem{Payload: i}
	}
	pushed, err := testClient.BatchPush(ctx, queue, items)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range pushed {
		want = append(want, p.ID)
	}

	// Oldest first, across three pages of 10.
	var got []string
	for job, err := range testClient.List(ctx, queue, chirpy.PageSize(10)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, job.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v,\nwant %v", got, want)
	}

	// Breaking out of the loop stops paging.
	got = got[:0]
	for job, err := range testClient.List(ctx, queue, chirpy.PageSize(10)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, job.ID)
		if len(got) == 12 {
			break
		}
	}
	if !slices.Equal(got, want[:12]) {
		t.Errorf("listed %v before the break", got)
	}

	// One page at a time.
	page, next, err := testClient.ListPage(ctx, queue, "", chirpy.PageSize(20))
	if err != nil || len(page) != 20 || next == "" {
		t.Fatalf("first page: %d jobs, next %q, %v", len(page), next, err)
	}
	page, next, err = testClient.ListPage(ctx, queue, next, chirpy.PageSize(20))
	if err != nil || len(page) != 5 || next != "" || page[4].ID != want[24] {
		t.Fatalf("last page: %d jobs, next %q, %v", len(page), next, err)
	}

	// By state.
	for _, id := range want[:4] {
		if _, err := testClient.Cancel(ctx, queue, id); err != nil {
			t.Fatal(err)
		}
	}
	got = got[:0]
	for job, err := range testClient.List(ctx, queue, chirpy.InState(chirpy.JobStateCanceled), chirpy.PageSize(3)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, job.ID)
	}
	if !slices.Equal(got, want[:4]) {
		t.Errorf("canceled jobs %v, want %v", got, want[:4])
	}

	// An error ends the iteration.
	var errs []error
	for job, err := range testClient.List(ctx, "not a queue") {
		if job != nil {
			t.Errorf("a job with the error: %v", job)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !chirpy.IsInvalidArgument(errs[0]) {
		t.Errorf("listing a bad queue: %v", errs)
	}

	// A page size out of range is the server's INVALID_ARGUMENT, not
	// quietly another size.
	for _, size := range []int{-1, 1001, math.MaxInt} {
		page, _, err := testClient.ListPage(ctx, queue, "", chirpy.PageSize(size))
		if !chirpy.IsInvalidArgument(err) || !strings.Contains(err.Error(), "page_size") {
			t.Errorf("page size %d: %d jobs, %v", size, len(page), err)
		}
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	pending, err := testClient.Push(ctx, queue, 1)
	if err != nil {
		t.Fatal(err)
	}
	scheduled, err := testClient.Push(ctx, queue, 2, chirpy.ScheduledAt(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{pending.ID, scheduled.ID} {
		job, err := testClient.Cancel(ctx, queue, id)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != chirpy.JobStateCanceled || job.FinishedAt.IsZero() {
			t.Errorf("canceled job: %+v", job)
		}
	}
	// A finished job cannot be canceled.
	_, err = testClient.Cancel(ctx, queue, pending.ID)
	if !chirpy.IsFailedPrecondition(err) {
		t.Errorf("canceling a canceled job: %v", err)
	}
	_, err = testClient.Cancel(ctx, queue, "01M91FEST9G85PZB9PYVGT9SJG")
	if !chirpy.IsNotFound(err) {
		t.Errorf("canceling a missing job: %v", err)
	}
}

func TestRetryDeadJobs(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	dead := killJobs(t, queue, 4)
	job, err := testClient.Retry(ctx, queue, dead[0])
	if err != nil {
		t.Fatal(err)
	}
	if job.State != chirpy.JobStatePending || job.Attempts != 0 {
		t.Errorf("retried job: %v attempts %d", job.State, job.Attempts)
	}
	// Only dead jobs can be retried.
	if _, err := testClient.Retry(ctx, queue, dead[0]); !chirpy.IsFailedPrecondition(err) {
		t.Errorf("retrying a pending job: %v", err)
	}

	// In bulk: some ids (the pending one is skipped), then all.
	retried, err := testClient.RetryDead(ctx, queue, dead[0], dead[1])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(retried, dead[1:2]) {
		t.Errorf("retried %v, want %v", retried, dead[1:2])
	}
	retried, err = testClient.RetryDead(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(retried, dead[2:]) {
		t.Errorf("retried %v, want %v", retried, dead[2:])
	}
	for _, id := range dead {
		if job, err := testClient.Get(ctx, queue, id); err != nil || job.State != chirpy.JobStatePending {
			t.Errorf("job %s after retries: %v %v", id, job, err)
		}
	}
}

func TestQueues(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	for i := range 3 {
		if _, err := testClient.Push(ctx, queue, i); err != nil {
			t.Fatal(err)
		}
	}
	canceled, err := testClient.Push(ctx, queue, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testClient.Cancel(ctx, queue, canceled.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := testClient.Push(ctx, queue, "later", chirpy.ScheduledAt(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	killJobs(t, queue, 1)

	queues, err := testClient.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(queues, func(q *chirpy.Queue) bool { return q.Name == queue })
	if i < 0 {
		t.Fatalf("queue %s not among %d queues", queue, len(queues))
	}
	want := chirpy.Queue{Name: queue, Pending: 3, Scheduled: 1, Canceled: 1, Dead: 1}
	if *queues[i] != want {
		t.Errorf("queue %+v, want %+v", *queues[i], want)
	}
	if !slices.IsSortedFunc(queues, func(a, b *chirpy.Queue) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("queues are not sorted by name")
	}
}

func TestErrorsKeepTheirCodes(t *testing.T) {
	t.Parallel()
	ctx, queue := testContext(t), testQueue(t)

	_, err := testClient.Push(ctx, "bad queue!", 1)
	if status.Code(err) != codes.InvalidArgument || !chirpy.IsInvalidArgument(err) {
		t.Fatalf("bad queue name: %v", err)
	}
	// The details name the field.
	st, _ := status.FromError(err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if !slices.Contains(fields, "queue") {
		t.Errorf("field violations %v, want queue", fields)
	}

	_, err = testClient.Get(ctx, queue, "01M91FEST9G85PZB9PYVGT9SJG")
	if !chirpy.IsNotFound(err) || status.Code(err) != codes.NotFound {
		t.Errorf("missing job: %v", err)
	}

	// Found by the client: a payload that is not JSON, an option out of
	// range.
	_, err = testClient.Push(ctx, queue, make(chan int))
	if !chirpy.IsInvalidArgument(err) {
		t.Errorf("a channel as payload: %v", err)
	}
	_, err = testClient.Push(ctx, queue, 1, chirpy.Priority(-1))
	if !chirpy.IsInvalidArgument(err) {
		t.Errorf("negative priority: %v", err)
	}
	// Wrapped errors keep their code.
	wrapped := fmt.Errorf("pushing: %w", err)
	if !chirpy.IsInvalidArgument(wrapped) || chirpy.IsNotFound(wrapped) {
		t.Errorf("wrapped: %v", wrapped)
	}
	if chirpy.IsNotFound(nil) || chirpy.IsNotFound(errors.New("plain")) {
		t.Error("IsNotFound of a non-status error")
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	client, err := chirpy.Dial(ctx, "http://"+testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Queues(ctx); err != nil {
		t.Error(err)
	}
	if err := client.Close(); err != nil {
		t.Error(err)
	}

	// Nothing listens on port 1.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := chirpy.Dial(short, "127.0.0.1:1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dialing a closed port: %v", err)
	}
	if _, err := chirpy.Dial(ctx, ""); err == nil {
		t.Error("dialing an empty target succeeded")
	}
}

// countJobs counts the jobs of queue.
func countJobs(t *testing.T, queue string) int {
	t.Helper()
	n := 0
	for _, err := range testClient.List(t.Context(), queue) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// killJobs pushes n jobs to queue and sends them to the failure queue
// through the raw worker protocol; it returns their ids, oldest first.
func killJobs(t *testing.T, queue string, n int) []string {
	t.Helper()
	ctx := testContext(t)
	items := make([]chirpy.PushItem, n)
	for i := range items {
		items[i] = chirpy.PushItem{Payload: fmt.Sprintf("doomed %d", i)}
	}
	pushed, err := testClient.BatchPush(ctx, queue, items)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, p := range pushed {
		ids[i] = p.ID
	}
	workers := testClient.WorkerService()
	resp, err := workers.LeaseJobs(ctx, &chirpyv1.LeaseJobsRequest{
		WorkerId: "killer", Queues: []string{queue}, MaxJobs: int32(n), Wait: durationpb.New(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetLeases()) != n {
		t.Fatalf("leased %d jobs, want %d", len(resp.GetLeases()), n)
	}
	for _, l := range resp.GetLeases() {
		_, err := workers.FailJob(ctx, &chirpyv1.FailJobRequest{
			Queue: queue, Id: l.GetJob().GetId(), LeaseId: l.GetLeaseId(), Error: "doomed", NonRetryable: true,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}
