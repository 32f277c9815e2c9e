package chirpy

import (
	"context"
	"time"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// maxHeartbeatJobs is the most running job ids one heartbeat may list.
const maxHeartbeatJobs = 10000

// heartbeats heartbeats at the interval the server asks for until ctx is
// done. A failed heartbeat is logged and tried again within a second: the
// leases expire only if the failures last.
func (w *Worker) heartbeats(ctx context.Context) {
	timer := time.NewTimer(w.heartbeatInterval())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := w.heartbeatInterval()
		if err := w.heartbeat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("heartbeat failed; leases expire if this lasts", "cause", err)
			next = min(next, time.Second)
		}
		timer.Reset(next)
	}
}

func (w *Worker) heartbeatInterval() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.interval
}

// heartbeat sends one heartbeat listing the jobs held, and applies the
// answer: cancellations, the directive and the interval.
func (w *Worker) heartbeat(ctx context.Context) error {
	w.mu.Lock()
	n := min(len(w.held), maxHeartbeatJobs)
	listed := make(map[string]*attempt, n)
	ids := make([]string, 0, n)
	for id, a := range w.held {
		if len(ids) == maxHeartbeatJobs {
			break
		}
		listed[id] = a
		ids = append(ids, id)
	}
	w.mu.Unlock()

	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := w.client.workers.Heartbeat(callCtx, &chirpyv1.HeartbeatRequest{
		WorkerId:      w.id,
		Queues:        []string{w.queue},
		RunningJobIds: ids,
	})
	if err != nil {
		return err
	}

	w.mu.Lock()
	// Only the attempts listed: a job leased again since has a new lease.
	for _, id := range resp.GetCanceledJobIds() {
		if a := listed[id]; a != nil && !a.dropped {
			w.dropLocked(a, ErrJobCanceled)
		}
	}
	for _, id := range resp.GetLostJobIds() {
		if a := listed[id]; a != nil && !a.dropped {
			w.dropLocked(a, ErrLeaseLost)
		}
	}
	quiet := resp.GetDirective() == chirpyv1.WorkerDirective_WORKER_DIRECTIVE_QUIET
	changed := quiet != w.quiet
	w.quiet = quiet
	if d := resp.GetHeartbeatInterval(); d != nil && d.AsDuration() > 0 {
		w.interval = clampHeartbeat(d.AsDuration())
	}
	w.mu.Unlock()

	if n := len(resp.GetCanceledJobIds()) + len(resp.GetLostJobIds()); n > 0 {
		w.log.Info("stopping jobs", "canceled", resp.GetCanceledJobIds(), "lost", resp.GetLostJobIds())
	}
	if changed {
		if quiet {
			w.log.Info("server asks for quiet; leasing paused")
		} else {
			w.log.Info("server asks to run; leasing resumed")
		}
		w.signal()
	}
	return nil
}
