package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// defaultConcurrency is a worker's concurrency when start_worker names none.
const defaultConcurrency = 4

// eofStopPatience bounds how long the runner waits for its workers to stop
// once stdin closes; then it exits anyway, before the driver (which waits
// 10 s) kills it.
const eofStopPatience = 5 * time.Second

// workers holds the runner's workers by handle, and the events their
// handlers record.
type workers struct {
	client *chirpy.Client
	log    *slog.Logger

	// running maps a handle to its worker; only the request loop touches
	// it.
	running map[string]*runningWorker

	mu sync.Mutex
	// recorded holds every event so far, in the order they happened.
	recorded []event
}

// A runningWorker is a [chirpy.Worker] whose Run goes on in the background.
type runningWorker struct {
	w    *chirpy.Worker
	stop context.CancelFunc
	// done receives Run's error, then is closed.
	done chan error
}

// An event is something a handler did.
type event struct {
	Worker  string `json:"worker"`
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	Event   string `json:"event"`
}

func newWorkers(client *chirpy.Client, log *slog.Logger) *workers {
	return &workers{client: client, log: log, running: make(map[string]*runningWorker)}
}

func (ws *workers) record(e event) {
	ws.mu.Lock()
	ws.recorded = append(ws.recorded, e)
	ws.mu.Unlock()
}

// start runs a worker for args.queue under the handle args.worker, and
// returns once the server lists it: it has registered, and its lease loop
// follows at once.
func (ws *workers) start(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Worker      string   `json:"worker"`
		Queue       string   `json:"queue"`
		Concurrency *integer `json:"concurrency"`
	}
	if err := decodeArgs("start_worker", raw, &args); err != nil {
		return nil, err
	}
	if _, ok := ws.running[args.Worker]; ok {
		return nil, unsupported("start_worker: the handle %q already has a worker", args.Worker)
	}
	concurrency := defaultConcurrency
	if args.Concurrency != nil {
		concurrency = int(*args.Concurrency)
	}
	handle := args.Worker
	w := chirpy.NewWorker(ws.client, args.Queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		return ws.handle(ctx, handle, job)
	}, chirpy.Concurrency(concurrency), chirpy.Logger(ws.log.With("handle", handle)))

	runCtx, stop := context.WithCancel(context.Background())
	rw := &runningWorker{w: w, stop: stop, done: make(chan error, 1)}
	go func() {
		rw.done <- w.Run(runCtx)
		close(rw.done)
	}()

	// Run has no "running" signal of its own: the worker is running once
	// the server lists it (its first heartbeat registers it).
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-rw.done:
			// Refused for good (an invalid queue name, say).
			stop()
			if err == nil {
				err = errors.New("go-runner: Worker.Run returned before the worker was listed")
			}
			return nil, err
		case <-ctx.Done():
			stop()
			<-rw.done
			return nil, fmt.Errorf("go-runner: worker %s not listed by the server: %w", w.ID(), ctx.Err())
		case <-tick.C:
		}
		infos, err := ws.client.Workers(ctx)
		if err != nil {
			continue // the deadline above ends the wait
		}
		if slices.ContainsFunc(infos, func(info *chirpy.WorkerInfo) bool { return info.ID == w.ID() }) {
			ws.running[handle] = rw
			ws.log.Info("worker running", "handle", handle, "id", w.ID(), "queue", args.Queue)
			return nil, nil
		}
	}
}

// stop stops the worker of args.worker gracefully: it returns once Run has
// returned, with Run's error if any.
func (ws *workers) stop(ctx context.Context, raw json.RawMessage) (any, error) {
	var args struct {
		Worker string `json:"worker"`
	}
	if err := decodeArgs("stop_worker", raw, &args); err != nil {
		return nil, err
	}
	rw, ok := ws.running[args.Worker]
	if !ok {
		return nil, unsupported("stop_worker: no worker has the handle %q", args.Worker)
	}
	rw.stop()
	select {
	case err := <-rw.done:
		delete(ws.running, args.Worker)
		return nil, err
	case <-ctx.Done():
		// Still stopping (a handler that does not return); the handle stays
		// taken so that a later stop_worker can wait again.
		return nil, fmt.Errorf("go-runner: worker %s still stopping: %w", rw.w.ID(), ctx.Err())
	}
}

// stopAll stops every worker at once, waiting at most eofStopPatience.
func (ws *workers) stopAll() {
	for _, rw := range ws.running {
		rw.stop()
	}
	deadline := time.After(eofStopPatience)
	for handle, rw := range ws.running {
		select {
		case <-rw.done:
		case <-deadline:
			ws.log.Warn("workers still stopping; exiting anyway", "handle", handle)
			return
		}
	}
}

// events returns every event recorded so far.
func (ws *workers) events(raw json.RawMessage) (any, error) {
	var args struct{}
	if err := decodeArgs("events", raw, &args); err != nil {
		return nil, err
	}
	ws.mu.Lock()
	events := slices.Clone(ws.recorded)
	ws.mu.Unlock()
	if events == nil {
		events = []event{}
	}
	return map[string]any{"events": events}, nil
}
