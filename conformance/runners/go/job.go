package main

import (
	"encoding/json"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// jobShape is the Job object of the protocol, whatever the SDK's types.
type jobShape struct {
	ID             string            `json:"id"`
	Queue          string            `json:"queue"`
	State          string            `json:"state"`
	Payload        json.RawMessage   `json:"payload"`
	Result         json.RawMessage   `json:"result"`
	Priority       int               `json:"priority"`
	Attempts       int               `json:"attempts"`
	MaxAttempts    int               `json:"max_attempts"`
	IdempotencyKey string            `json:"idempotency_key"`
	LastError      string            `json:"last_error"`
	Metadata       map[string]string `json:"metadata"`
	ScheduledAt    *string           `json:"scheduled_at"`
	CreatedAt      *string           `json:"created_at"`
	StartedAt      *string           `json:"started_at"`
	FinishedAt     *string           `json:"finished_at"`
	WorkerID       *string           `json:"worker_id"`
}

func shapeJob(j *chirpy.Job) *jobShape {
	if j == nil {
		return nil
	}
	s := &jobShape{
		ID:             j.ID,
		Queue:          j.Queue,
		State:          j.State.String(),
		Payload:        orNull(j.Payload),
		Result:         orNull(j.Result),
		Priority:       j.Priority,
		Attempts:       j.Attempts,
		MaxAttempts:    j.MaxAttempts,
		IdempotencyKey: j.IdempotencyKey,
		LastError:      j.LastError,
		Metadata:       j.Metadata,
		ScheduledAt:    timestamp(j.ScheduledAt),
		CreatedAt:      timestamp(j.CreatedAt),
		StartedAt:      timestamp(j.StartedAt),
		FinishedAt:     timestamp(j.FinishedAt),
	}
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if j.Lease != nil && j.Lease.WorkerID != "" {
		s.WorkerID = &j.Lease.WorkerID
	}
	return s
}

func shapeJobs(jobs []*chirpy.Job) []*jobShape {
	shaped := make([]*jobShape, len(jobs))
	for i, j := range jobs {
		shaped[i] = shapeJob(j)
	}
	return shaped
}

// timestamp is t in RFC 3339 (UTC, as precise as the server gives it), or
// nil for the zero time, which the SDK uses for unset.
func timestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
