package main

import (
	"context"
	"encoding/json"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// jobArgs are the arguments of one pushed job, as in push and in each item
// of batch_push.
type jobArgs struct {
	Payload        json.RawMessage   `json:"payload"`
	ScheduledAt    *string           `json:"scheduled_at"`
	Priority       *integer          `json:"priority"`
	MaxAttempts    *integer          `json:"max_attempts"`
	IdempotencyKey *string           `json:"idempotency_key"`
	Metadata       map[string]string `json:"metadata"`
	Backoff        *struct {
		InitialMS integer `json:"initial_ms"`
		MaxMS     integer `json:"max_ms"`
	} `json:"backoff"`
}

// options turns the arguments into the SDK's push options.
func (a *jobArgs) options(kind string) ([]chirpy.PushOption, error) {
	var opts []chirpy.PushOption
	if a.ScheduledAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *a.ScheduledAt)
		if err != nil {
			return nil, unsupported("%s: scheduled_at %q is not RFC 3339", kind, *a.ScheduledAt)
		}
		opts = append(opts, chirpy.ScheduledAt(t))
	}
	if a.Priority != nil {
		opts = append(opts, chirpy.Priority(int(*a.Priority)))
	}
	if a.MaxAttempts != nil {
		opts = append(opts, chirpy.MaxAttempts(int(*a.MaxAttempts)))
	}
	if a.IdempotencyKey != nil {
		opts = append(opts, chirpy.IdempotencyKey(*a.IdempotencyKey))
	}
	if a.Metadata != nil {
		opts = append(opts, chirpy.Metadata(a.Metadata))
	}
	if b := a.Backoff; b != nil {
		opts = append(opts, chirpy.Backoff(
			time.Duration(b.InitialMS)*time.Millisecond,
			time.Duration(b.MaxMS)*time.Millisecond,
		))
	}
	return opts, nil
}

// payload is the payload to push: the JSON as given (null when missing).
func (a *jobArgs) payload() json.RawMessage {
	return orNull(a.Payload)
}

func (r *runner) push(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Queue string `json:"queue"`
		jobArgs
	}
	if err := decodeArgs("push", raw, &args); err != nil {
		return nil, err
	}
	opts, err := args.options("push")
	if err != nil {
		return nil, err
	}
	pushed, err := r.client.Push(ctx, args.Queue, args.payload(), opts...)
	if err != nil {
		return nil, err
	}
	return shapeJob(pushed.Job), nil
}

func (r *runner) batchPush(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Queue string    `json:"queue"`
		Jobs  []jobArgs `json:"jobs"`
	}
	if err := decodeArgs("batch_push", raw, &args); err != nil {
		return nil, err
	}
	items := make([]chirpy.PushItem, len(args.Jobs))
	for i := range args.Jobs {
		opts, err := args.Jobs[i].options("batch_push")
		if err != nil {
			return nil, err
		}
		items[i] = chirpy.PushItem{Payload: args.Jobs[i].payload(), Options: opts}
	}
	pushed, err := r.client.BatchPush(ctx, args.Queue, items)
	if err != nil {
		return nil, err
	}
	jobs := make([]*chirpy.Job, len(pushed))
	for i, p := range pushed {
		jobs[i] = p.Job
	}
	return map[string]any{"jobs": shapeJobs(jobs)}, nil
}

// jobRef names one job: the arguments of get, cancel and retry.
type jobRef struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
}

func (r *runner) get(ctx context.Context, raw json.RawMessage) (any, error) {
	var args jobRef
	if err := decodeArgs("get", raw, &args); err != nil {
		return nil, err
	}
	job, err := r.client.Get(ctx, args.Queue, args.ID)
	if err != nil {
		return nil, err
	}
	return shapeJob(job), nil
}

func (r *runner) cancel(ctx context.Context, raw json.RawMessage) (any, error) {
	var args jobRef
	if err := decodeArgs("cancel", raw, &args); err != nil {
		return nil, err
	}
	job, err := r.client.Cancel(ctx, args.Queue, args.ID)
	if err != nil {
		return nil, err
	}
	return shapeJob(job), nil
}

func (r *runner) retry(ctx context.Context, raw json.RawMessage) (any, error) {
	var args jobRef
	if err := decodeArgs("retry", raw, &args); err != nil {
		return nil, err
	}
	job, err := r.client.Retry(ctx, args.Queue, args.ID)
	if err != nil {
		return nil, err
	}
	return shapeJob(job), nil
}

func (r *runner) list(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Queue     string   `json:"queue"`
		State     *string  `json:"state"`
		PageSize  *integer `json:"page_size"`
		PageToken string   `json:"page_token"`
	}
	if err := decodeArgs("list", raw, &args); err != nil {
		return nil, err
	}
	var opts []chirpy.ListOption
	if args.State != nil {
		state, ok := parseState(*args.State)
		if !ok {
			return nil, unsupported("list: state %q is not a JobState of the SDK", *args.State)
		}
		opts = append(opts, chirpy.InState(state))
	}
	if args.PageSize != nil {
		opts = append(opts, chirpy.PageSize(int(*args.PageSize)))
	}
	jobs, next, err := r.client.ListPage(ctx, args.Queue, args.PageToken, opts...)
	if err != nil {
		return nil, err
	}
	return map[string]any{"jobs": shapeJobs(jobs), "next_page_token": next}, nil
}

// parseState finds the SDK's state named s ("PENDING", "DEAD", ...).
func parseState(s string) (chirpy.JobState, bool) {
	for _, state := range []chirpy.JobState{
		chirpy.JobStateUnspecified, chirpy.JobStatePending, chirpy.JobStateScheduled, chirpy.JobStateRunning,
		chirpy.JobStateSucceeded, chirpy.JobStateDead, chirpy.JobStateCanceled,
	} {
		if state.String() == s {
			return state, true
		}
	}
	return 0, false
}

func (r *runner) retryDead(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Queue string   `json:"queue"`
		IDs   []string `json:"ids"`
	}
	if err := decodeArgs("retry_dead", raw, &args); err != nil {
		return nil, err
	}
	ids, err := r.client.RetryDead(ctx, args.Queue, args.IDs...)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return map[string]any{"ids": ids}, nil
}

func (r *runner) queues(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct{}
	if err := decodeArgs("queues", raw, &args); err != nil {
		return nil, err
	}
	queues, err := r.client.Queues(ctx)
	if err != nil {
		return nil, err
	}
	type queueShape struct {
		Name      string `json:"name"`
		Pending   int64  `json:"pending"`
		Scheduled int64  `json:"scheduled"`
		Running   int64  `json:"running"`
		Succeeded int64  `json:"succeeded"`
		Dead      int64  `json:"dead"`
		Canceled  int64  `json:"canceled"`
	}
	shaped := make([]queueShape, len(queues))
	for i, q := range queues {
		shaped[i] = queueShape{q.Name, q.Pending, q.Scheduled, q.Running, q.Succeeded, q.Dead, q.Canceled}
	}
	return map[string]any{"queues": shaped}, nil
}

func (r *runner) listWorkers(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct{}
	if err := decodeArgs("workers", raw, &args); err != nil {
		return nil, err
	}
	infos, err := r.client.Workers(ctx)
	if err != nil {
		return nil, err
	}
	type workerShape struct {
		ID          string   `json:"id"`
		Queues      []string `json:"queues"`
		RunningJobs int64    `json:"running_jobs"`
	}
	shaped := make([]workerShape, len(infos))
	for i, w := range infos {
		queues := w.Queues
		if queues == nil {
			queues = []string{}
		}
		shaped[i] = workerShape{w.ID, queues, w.RunningJobs}
	}
	return map[string]any{"workers": shaped}, nil
}
