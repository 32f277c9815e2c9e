package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// defaultAwaitCancel is how long await_cancel waits when the payload gives
// no ms.
const defaultAwaitCancel = 30 * time.Second

// The events a handler records.
const (
	eventStarted   = "started"
	eventSucceeded = "succeeded"
	eventFailed    = "failed"
	eventCanceled  = "canceled"
)

// instructions is what a job's payload tells the handler to do.
type instructions struct {
	do     string
	result json.RawMessage
	error  string
	// attempt is fail_until's first succeeding attempt.
	attempt float64
	// wait is sleep's and await_cancel's duration; hasWait tells whether
	// the payload gave one.
	wait    time.Duration
	hasWait bool
}

// readInstructions reads a payload: a payload that is not an object, or has
// no do, means succeed. An attempt or ms that is not a number is an error.
func readInstructions(payload json.RawMessage) (instructions, error) {
	in := instructions{do: "succeed"}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil || fields == nil {
		return in, nil
	}
	if raw, ok := fields["do"]; ok {
		if err := json.Unmarshal(raw, &in.do); err != nil {
			in.do = string(raw) // not a string: reported as an unknown do
		}
	}
	in.result = fields["result"]
	if raw, ok := fields["error"]; ok {
		if err := json.Unmarshal(raw, &in.error); err != nil {
			in.error = string(raw) // not a string: its JSON text
		}
	}
	if raw, ok := fields["attempt"]; ok {
		if err := json.Unmarshal(raw, &in.attempt); err != nil {
			return in, fmt.Errorf("payload.attempt: want a number, got %s", raw)
		}
	}
	if raw, ok := fields["ms"]; ok && !bytes.Equal(raw, []byte("null")) {
		var ms float64
		if err := json.Unmarshal(raw, &ms); err != nil {
			return in, fmt.Errorf("payload.ms: want a number, got %s", raw)
		}
		in.wait, in.hasWait = time.Duration(ms*float64(time.Millisecond)), true
	}
	return in, nil
}

// handle is the runner's one handler, run by every worker: it does what the
// job's payload says and records events under the worker's handle.
func (ws *workers) handle(ctx context.Context, handle string, job *chirpy.Job) (any, error) {
	record := func(name string) {
		ws.record(event{Worker: handle, Job: job.ID, Attempt: job.Attempts, Event: name})
	}
	record(eventStarted)
	result, ended, err := behave(ctx, job)
	record(ended)
	return result, err
}

// behave runs one behaviour, and returns the handler's result, the event
// that ends it, and the handler's error.
func behave(ctx context.Context, job *chirpy.Job) (result any, ended string, err error) {
	in, err := readInstructions(job.Payload)
	if err != nil {
		return nil, eventFailed, chirpy.NonRetryable(fmt.Errorf("go-runner: %w", err))
	}
	switch in.do {
	case "succeed":
		return orNull(in.result), eventSucceeded, nil
	case "fail":
		return nil, eventFailed, errors.New(in.error)
	case "fail_permanently":
		return nil, eventFailed, chirpy.NonRetryable(errors.New(in.error))
	case "fail_until":
		// job.Attempts is the attempt the SDK hands the handler: 1 for the
		// first run.
		if float64(job.Attempts) < in.attempt {
			return nil, eventFailed, errors.New(in.error)
		}
		return orNull(in.result), eventSucceeded, nil
	case "sleep":
		if !wait(ctx, in.wait) {
			return nil, eventCanceled, context.Cause(ctx)
		}
		return orNull(in.result), eventSucceeded, nil
	case "await_cancel":
		d := defaultAwaitCancel
		if in.hasWait {
			d = in.wait
		}
		if !wait(ctx, d) {
			// The SDK canceled the context (job canceled, lease lost, or
			// shutdown grace over) and expects the handler to return; it
			// drops or reports the outcome as the cause requires.
			return nil, eventCanceled, context.Cause(ctx)
		}
		return nil, eventFailed, fmt.Errorf("await_cancel: not canceled within %v", d)
	}
	return nil, eventFailed, chirpy.NonRetryable(fmt.Errorf("go-runner: unknown do %q", in.do))
}

// wait waits for d, or until ctx is done (false).
func wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
