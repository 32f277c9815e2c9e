package chirpy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// maxBatch is the most outcomes in one batch call.
const maxBatch = 1000

// reportPatience bounds how long an outcome is retried while the server
// does not answer; after that the lease expires and the job runs again,
// as at-least-once delivery allows.
const reportPatience = 30 * time.Second

// An outcome is what became of an attempt, to report.
type outcome struct {
	a *attempt
	// result is the handler's result, for a success.
	result *structpb.Value
	// failed marks a failure, with the fields that follow.
	failed       bool
	message      string
	nonRetryable bool
	retryAfter   time.Duration
}

// outcomeOf reads a handler's return values.
func outcomeOf(a *attempt, result any, err error) outcome {
	if err == nil {
		value, jsonErr := toValue(result)
		if jsonErr == nil {
			return outcome{a: a, result: value}
		}
		err = fmt.Errorf("the result is not JSON: %w", jsonErr)
	}
	o := outcome{a: a, failed: true, message: err.Error()}
	var nonRetryable *nonRetryableError
	o.nonRetryable = errors.As(err, &nonRetryable)
	var retryAfter *retryAfterError
	if errors.As(err, &retryAfter) {
		o.retryAfter = retryAfter.after
	}
	return o
}

// report sends the queued outcomes, everything queued at once, until
// handlersDone is closed and the outbox is empty.
func (w *Worker) report(handlersDone <-chan struct{}) {
	for {
		w.mu.Lock()
		n := min(len(w.outbox), maxBatch)
		batch := w.outbox[:n:n]
		w.outbox = w.outbox[n:]
		// Canceled or lost meanwhile: the server would refuse it.
		live := make([]outcome, 0, n)
		for _, o := range batch {
			if !o.a.dropped {
				live = append(live, o)
			}
		}
		w.mu.Unlock()
		if n > 0 {
			w.send(live)
			continue
		}
		select {
		case <-w.outboxReady:
		case <-handlersDone:
			w.mu.Lock()
			empty := len(w.outbox) == 0
			w.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// send reports outcomes: successes and failures, each in one call, batched
// when there are several.
func (w *Worker) send(batch []outcome) {
	var completions []*chirpyv1.CompleteJobRequest
	var failures []*chirpyv1.FailJobRequest
	for _, o := range batch {
		job := o.a.job
		if !o.failed {
			completions = append(completions, &chirpyv1.CompleteJobRequest{
				Queue: job.Queue, Id: job.ID, LeaseId: o.a.leaseID, Result: o.result,
			})
			continue
		}
		w.log.Debug("job failed", "job", job.ID, "attempt", job.Attempts, "error", o.message)
		f := &chirpyv1.FailJobRequest{
			Queue: job.Queue, Id: job.ID, LeaseId: o.a.leaseID,
			Error: o.message, NonRetryable: o.nonRetryable,
		}
		if o.retryAfter > 0 {
			f.RetryAfter = durationpb.New(o.retryAfter)
		}
		failures = append(failures, f)
	}
	switch len(completions) {
	case 0:
	case 1:
		w.reportOne("completion", func(ctx context.Context) error {
			_, err := w.client.workers.CompleteJob(ctx, completions[0])
			return err
		})
	default:
		var resp *chirpyv1.BatchCompleteJobsResponse
		w.reportMany("completion", len(completions), func(ctx context.Context) (err error) {
			resp, err = w.client.workers.BatchCompleteJobs(ctx, &chirpyv1.BatchCompleteJobsRequest{Jobs: completions})
			return err
		}, func() []*chirpyv1.JobOutcome { return resp.GetResults() })
	}
	switch len(failures) {
	case 0:
	case 1:
		w.reportOne("failure", func(ctx context.Context) error {
			_, err := w.client.workers.FailJob(ctx, failures[0])
			return err
		})
	default:
		var resp *chirpyv1.BatchFailJobsResponse
		w.reportMany("failure", len(failures), func(ctx context.Context) (err error) {
			resp, err = w.client.workers.BatchFailJobs(ctx, &chirpyv1.BatchFailJobsRequest{Jobs: failures})
			return err
		}, func() []*chirpyv1.JobOutcome { return resp.GetResults() })
	}
	for _, o := range batch {
		w.forget(o.a)
	}
}

func (w *Worker) reportOne(kind string, call func(context.Context) error) {
	if err := w.retrying("report a "+kind, call); err != nil {
		if permanent(err) {
			// Typically the job was canceled, or its lease expired and it
			// was leased again.
			w.log.Info(kind+" not recorded", "cause", err)
		} else {
			w.log.Error(kind+" lost; the job runs again when its lease expires", "cause", err)
		}
	}
}

func (w *Worker) reportMany(kind string, n int, call func(context.Context) error, results func() []*chirpyv1.JobOutcome) {
	if err := w.retrying("report "+kind+"s", call); err != nil {
		w.log.Error(kind+"s lost; the jobs run again when their leases expire", "jobs", n, "cause", err)
		return
	}
	w.logRefusals(kind, results())
}

// logRefusals logs the items of a batch call that the server refused.
func (w *Worker) logRefusals(kind string, results []*chirpyv1.JobOutcome) {
	for _, r := range results {
		if e := r.GetError(); e != nil {
			w.log.Info(kind+" not recorded", "cause", e.GetMessage())
		}
	}
}

// retrying calls call until the server answers, backing off while the
// failure may pass, for at most reportPatience. Each call gets callTimeout.
func (w *Worker) retrying(what string, call func(context.Context) error) error {
	deadline := time.Now().Add(reportPatience)
	var pause backoff
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := call(ctx)
		cancel()
		if err == nil || permanent(err) {
			return err
		}
		d := pause.next()
		if time.Now().Add(d).After(deadline) {
			return err
		}
		w.log.Warn("cannot "+what+"; retrying", "cause", err, "retry_in", d)
		time.Sleep(d)
	}
}
