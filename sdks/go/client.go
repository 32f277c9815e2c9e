package chirpy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// maxMessageSize is the largest response the client accepts: a page of a
// thousand jobs with large payloads exceeds gRPC's default of 4 MiB.
const maxMessageSize = 64 << 20

// A Client calls a Chirpy server: the JobService for producers and
// operators, the WorkerService for [Worker]. It is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn // set by Dial, which owns it
	jobs    chirpyv1.JobServiceClient
	workers chirpyv1.WorkerServiceClient
}

// Dial connects to the Chirpy server at target and waits until the
// connection is ready: until ctx is done, or for at most 10 s when ctx has
// no deadline. Once connected, the client reconnects by itself (backing off
// up to 5 s) whenever the server goes away.
//
// target is "host:port" or "http://host:port" for plaintext gRPC, or
// "https://host[:port]" for TLS with the system's roots. opts are passed to
// [grpc.NewClient] after the client's own (transport credentials, a 64 MiB
// receive limit, the reconnection backoff), so they can override them.
//
// Close the client when done. For a connection set up elsewhere, use
// [NewClient].
func Dial(ctx context.Context, target string, opts ...grpc.DialOption) (*Client, error) {
	if target == "" {
		return nil, errors.New("chirpy: dial: empty target")
	}
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	switch {
	case strings.HasPrefix(target, "http://"):
		target = strings.TrimPrefix(target, "http://")
	case strings.HasPrefix(target, "https://"):
		target = strings.TrimPrefix(target, "https://")
		if !strings.Contains(target, ":") {
			target += ":443"
		}
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	target = strings.TrimSuffix(target, "/")
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize)),
		// gRPC's default waits up to 2 minutes between reconnections; a
		// worker should be back soon after its server restarts.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  250 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   5 * time.Second,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, opts...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("chirpy: dial %s: %w", target, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	conn.Connect()
	for state := conn.GetState(); state != connectivity.Ready; state = conn.GetState() {
		if !conn.WaitForStateChange(ctx, state) {
			_ = conn.Close()
			return nil, fmt.Errorf("chirpy: dial %s: not connected (%s): %w", target, state, ctx.Err())
		}
	}
	c := NewClient(conn)
	c.conn = conn
	return c, nil
}

// NewClient returns a client that calls the server over conn, such as a
// [grpc.ClientConn] set up with its own credentials and interceptors. The
// caller keeps ownership of conn. Pages of large jobs may exceed gRPC's
// default 4 MiB receive limit: [Dial] raises it with
// [grpc.MaxCallRecvMsgSize], which conn may want too.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{
		jobs:    chirpyv1.NewJobServiceClient(conn),
		workers: chirpyv1.NewWorkerServiceClient(conn),
	}
}

// Close closes the connection opened by [Dial]; for a client made with
// [NewClient] it does nothing.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// JobService returns the generated JobService client, for what this
// package does not wrap.
func (c *Client) JobService() chirpyv1.JobServiceClient { return c.jobs }

// WorkerService returns the generated WorkerService client, for workers of
// one's own.
func (c *Client) WorkerService() chirpyv1.WorkerServiceClient { return c.workers }

// Push stores a job in queue, created on first push. payload is any value
// [encoding/json] can marshal, such as a struct, a map or a
// [encoding/json.RawMessage] (numbers travel as JSON numbers, so integers
// beyond 2^53 lose precision). opts set its schedule, priority, attempts,
// idempotency key, metadata and retry policy.
//
// With an [IdempotencyKey] that already exists in the queue, Push returns
// the existing job with Deduplicated set and creates nothing.
func (c *Client) Push(ctx context.Context, queue string, payload any, opts ...PushOption) (*PushedJob, error) {
	req, err := pushRequest(queue, payload, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.jobs.PushJob(ctx, req)
	if err != nil {
		return nil, err
	}
	return pushedFromProto(resp), nil
}

// A PushItem is one job of [Client.BatchPush].
type PushItem struct {
	// Payload is the job's arguments, as for [Client.Push].
	Payload any
	// Options set the job's other fields, as for [Client.Push].
	Options []PushOption
}

// BatchPush stores 1 to 1000 jobs in queue in one transaction: all of them,
// or none. It returns one result per item, in order; items with an existing
// idempotency key (also one repeated within the batch) are deduplicated.
func (c *Client) BatchPush(ctx context.Context, queue string, items []PushItem) ([]*PushedJob, error) {
	req := &chirpyv1.BatchPushJobsRequest{Queue: queue, Jobs: make([]*chirpyv1.PushJobRequest, len(items))}
	for i, item := range items {
		job, err := pushRequest("", item.Payload, item.Options)
		if err != nil {
			return nil, err
		}
		req.Jobs[i] = job
	}
	resp, err := c.jobs.BatchPushJobs(ctx, req)
	if err != nil {
		return nil, err
	}
	pushed := make([]*PushedJob, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		pushed[i] = pushedFromProto(r)
	}
	return pushed, nil
}

func pushRequest(queue string, payload any, opts []PushOption) (*chirpyv1.PushJobRequest, error) {
	value, err := toValue(payload)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "payload: not JSON: %v", err)
	}
	cfg := pushConfig{req: &chirpyv1.PushJobRequest{Queue: queue, Payload: value}}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg.req, cfg.err
}

func pushedFromProto(r *chirpyv1.PushJobResponse) *PushedJob {
	return &PushedJob{Job: jobFromProto(r.GetJob()), Deduplicated: r.GetDeduplicated()}
}

// Get returns the job id of queue; a missing one is NOT_FOUND.
func (c *Client) Get(ctx context.Context, queue, id string) (*Job, error) {
	resp, err := c.jobs.GetJob(ctx, &chirpyv1.GetJobRequest{Queue: queue, Id: id})
	if err != nil {
		return nil, err
	}
	return jobFromProto(resp.GetJob()), nil
}

// List returns an iterator over the jobs of queue, oldest first, fetching
// one page at a time as the loop goes on. A failed call ends the iteration
// with its error:
//
//	for job, err := range client.List(ctx, "email", chirpy.InState(chirpy.JobStateDead)) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(job.ID, job.LastError)
//	}
func (c *Client) List(ctx context.Context, queue string, opts ...ListOption) iter.Seq2[*Job, error] {
	return func(yield func(*Job, error) bool) {
		token := ""
		for {
			jobs, next, err := c.ListPage(ctx, queue, token, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, job := range jobs {
				if !yield(job, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// ListPage returns one page of the jobs of queue, oldest first, and the
// token of the next page ("" after the last). Pass "" as pageToken for the
// first page, and the same options for every page.
func (c *Client) ListPage(ctx context.Context, queue, pageToken string, opts ...ListOption) ([]*Job, string, error) {
	req := &chirpyv1.ListJobsRequest{Queue: queue, PageToken: pageToken}
	for _, opt := range opts {
		opt(req)
	}
	resp, err := c.jobs.ListJobs(ctx, req)
	if err != nil {
		return nil, "", err
	}
	jobs := make([]*Job, len(resp.GetJobs()))
	for i, j := range resp.GetJobs() {
		jobs[i] = jobFromProto(j)
	}
	return jobs, resp.GetNextPageToken(), nil
}

// Cancel cancels a job that has not finished and returns it, now canceled.
// A running job's worker learns of it at its next heartbeat. A finished job
// is FAILED_PRECONDITION.
func (c *Client) Cancel(ctx context.Context, queue, id string) (*Job, error) {
	resp, err := c.jobs.CancelJob(ctx, &chirpyv1.CancelJobRequest{Queue: queue, Id: id})
	if err != nil {
		return nil, err
	}
	return jobFromProto(resp.GetJob()), nil
}

// Retry brings a dead job back: it is pending again with its attempts
// reset. A job in another state is FAILED_PRECONDITION.
func (c *Client) Retry(ctx context.Context, queue, id string) (*Job, error) {
	resp, err := c.jobs.RetryJob(ctx, &chirpyv1.RetryJobRequest{Queue: queue, Id: id})
	if err != nil {
		return nil, err
	}
	return jobFromProto(resp.GetJob()), nil
}

// RetryDead retries dead jobs of queue in bulk: those of ids (at most
// 1000), or every dead job of the queue when ids is empty. Jobs that are not
// dead are skipped. It returns the ids of the jobs now pending, oldest
// first.
func (c *Client) RetryDead(ctx context.Context, queue string, ids ...string) ([]string, error) {
	resp, err := c.jobs.BatchRetryJobs(ctx, &chirpyv1.BatchRetryJobsRequest{Queue: queue, Ids: ids})
	if err != nil {
		return nil, err
	}
	return resp.GetRetriedIds(), nil
}

// Queues returns every queue that holds jobs, by name, with per-state
// counts.
func (c *Client) Queues(ctx context.Context) ([]*Queue, error) {
	var queues []*Queue
	req := &chirpyv1.ListQueuesRequest{PageSize: 1000}
	for {
		resp, err := c.jobs.ListQueues(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, q := range resp.GetQueues() {
			queues = append(queues, queueFromProto(q))
		}
		if resp.GetNextPageToken() == "" {
			return queues, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// Workers returns the workers heard from within the last five minutes, most
// recent first.
func (c *Client) Workers(ctx context.Context) ([]*WorkerInfo, error) {
	resp, err := c.jobs.ListWorkers(ctx, &chirpyv1.ListWorkersRequest{})
	if err != nil {
		return nil, err
	}
	workers := make([]*WorkerInfo, len(resp.GetWorkers()))
	for i, w := range resp.GetWorkers() {
		workers[i] = workerFromProto(w)
	}
	return workers, nil
}
