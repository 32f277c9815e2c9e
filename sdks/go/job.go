package chirpy

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// JobState is where a job is in its life cycle.
type JobState int32

// The job states. [JobStateUnspecified] is not a state; as a filter it means
// any state.
const (
	JobStateUnspecified = JobState(chirpyv1.JobState_JOB_STATE_UNSPECIFIED)
	// Ready to run, waiting for a worker.
	JobStatePending = JobState(chirpyv1.JobState_JOB_STATE_PENDING)
	// Waiting for its scheduled time: pushed for later, or backing off
	// before a retry.
	JobStateScheduled = JobState(chirpyv1.JobState_JOB_STATE_SCHEDULED)
	// Leased to a worker.
	JobStateRunning = JobState(chirpyv1.JobState_JOB_STATE_RUNNING)
	// Finished; the job's Result holds what the worker returned.
	JobStateSucceeded = JobState(chirpyv1.JobState_JOB_STATE_SUCCEEDED)
	// The failure queue: attempts used up, or failed as non-retryable.
	JobStateDead = JobState(chirpyv1.JobState_JOB_STATE_DEAD)
	// Canceled before it finished.
	JobStateCanceled = JobState(chirpyv1.JobState_JOB_STATE_CANCELED)
)

// String returns the state's name without the proto prefix: "PENDING",
// "DEAD" and so on.
func (s JobState) String() string {
	return strings.TrimPrefix(chirpyv1.JobState(s).String(), "JOB_STATE_")
}

// A Job is a unit of work pushed to a queue and run by a worker.
type Job struct {
	// ID is the server-assigned ULID.
	ID string
	// Queue is the queue the job belongs to.
	Queue string
	// Payload is the job's arguments as JSON; see [Job.Decode].
	Payload json.RawMessage
	// State is where the job is in its life cycle.
	State JobState
	// Priority: higher runs first within a queue.
	Priority int
	// Attempts counts the attempts started, including a running one.
	Attempts int
	// MaxAttempts is how many attempts the job gets before it is dead.
	MaxAttempts int
	// ScheduledAt is when the job becomes ready (its next attempt, for a
	// retry).
	ScheduledAt time.Time
	// CreatedAt is when the job was pushed.
	CreatedAt time.Time
	// StartedAt is when the latest attempt was handed to a worker; zero
	// before that.
	StartedAt time.Time
	// FinishedAt is when the job reached a final state; zero before that.
	FinishedAt time.Time
	// LastError is the error of the latest failed attempt, if any.
	LastError string
	// Result is what the worker returned, as JSON, once the job succeeded;
	// nil before that. See [Job.DecodeResult].
	Result json.RawMessage
	// Metadata holds the producer's string pairs.
	Metadata map[string]string
	// IdempotencyKey deduplicates pushes within the queue.
	IdempotencyKey string
	// Lease is the current lease while the job runs on a Chirpy worker.
	Lease *Lease
	// RetryPolicy is the job's own backoff; nil means the server's default.
	RetryPolicy *RetryPolicy

	proto *chirpyv1.Job
}

// A Lease is a worker's claim on a running job.
type Lease struct {
	// WorkerID is the worker that holds the lease.
	WorkerID string
	// ExpiresAt is when the lease lapses unless the worker renews it.
	ExpiresAt time.Time
}

// A RetryPolicy is an exponential backoff between attempts.
type RetryPolicy struct {
	// InitialBackoff is the wait before the first retry.
	InitialBackoff time.Duration
	// MaxBackoff is the longest wait between attempts.
	MaxBackoff time.Duration
}

// Decode unmarshals the job's payload into v, as [json.Unmarshal] does.
func (j *Job) Decode(v any) error {
	return json.Unmarshal(orNull(j.Payload), v)
}

// DecodeResult unmarshals the job's result into v, as [json.Unmarshal] does.
func (j *Job) DecodeResult(v any) error {
	return json.Unmarshal(orNull(j.Result), v)
}

// Proto returns the job as the server sent it.
func (j *Job) Proto() *chirpyv1.Job {
	return j.proto
}

// A PushedJob is the outcome of a push: the job as stored, and whether an
// existing job was returned for its idempotency key.
type PushedJob struct {
	*Job
	// Deduplicated is true when the push's idempotency key matched an
	// existing job, which is returned instead of a new one.
	Deduplicated bool
}

// A Queue is a queue that holds jobs, with how many are in each state.
type Queue struct {
	// Name is the queue's name.
	Name string
	// Pending, Scheduled, Running, Succeeded, Dead and Canceled count the
	// queue's jobs in each state.
	Pending, Scheduled, Running, Succeeded, Dead, Canceled int64
}

// A WorkerInfo is a worker known to the server: a remote worker such as
// [Worker], or an embedded Apalis worker on the same storage.
type WorkerInfo struct {
	// ID is the worker's self-chosen id.
	ID string
	// Queues are the queues it works.
	Queues []string
	// Kind is "chirpy" for remote workers, the Apalis storage otherwise.
	Kind string
	// StartedAt is when it first registered.
	StartedAt time.Time
	// LastHeartbeatAt is when it was last heard from.
	LastHeartbeatAt time.Time
	// RunningJobs is how many jobs it runs now.
	RunningJobs int64
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// toValue converts a payload or result to a google.protobuf.Value through
// its JSON encoding. A *structpb.Value is taken as is.
func toValue(v any) (*structpb.Value, error) {
	if value, ok := v.(*structpb.Value); ok && value != nil {
		return value, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	value := new(structpb.Value)
	if err := protojson.Unmarshal(data, value); err != nil {
		return nil, err
	}
	return value, nil
}

// fromValue renders a google.protobuf.Value as compact JSON with sorted
// keys (protojson's output is deliberately unstable); nil stays nil.
func fromValue(v *structpb.Value) json.RawMessage {
	if v == nil {
		return nil
	}
	if data, err := json.Marshal(v.AsInterface()); err == nil {
		return data
	}
	// Only NaN or infinite numbers get here; keep what protojson says.
	data, _ := protojson.Marshal(v)
	return data
}

func fromTimestamp(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func jobFromProto(p *chirpyv1.Job) *Job {
	if p == nil {
		return nil
	}
	j := &Job{
		ID:             p.GetId(),
		Queue:          p.GetQueue(),
		Payload:        fromValue(p.GetPayload()),
		State:          JobState(p.GetState()),
		Priority:       int(p.GetPriority()),
		Attempts:       int(p.GetAttempts()),
		MaxAttempts:    int(p.GetMaxAttempts()),
		ScheduledAt:    fromTimestamp(p.GetScheduledAt()),
		CreatedAt:      fromTimestamp(p.GetCreatedAt()),
		StartedAt:      fromTimestamp(p.GetStartedAt()),
		FinishedAt:     fromTimestamp(p.GetFinishedAt()),
		LastError:      p.GetLastError(),
		Result:         fromValue(p.GetResult()),
		Metadata:       p.GetMetadata(),
		IdempotencyKey: p.GetIdempotencyKey(),
		proto:          p,
	}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
	}
	if l := p.GetLease(); l != nil {
		j.Lease = &Lease{WorkerID: l.GetWorkerId(), ExpiresAt: fromTimestamp(l.GetExpiresAt())}
	}
	if r := p.GetRetryPolicy(); r != nil {
		j.RetryPolicy = &RetryPolicy{
			InitialBackoff: r.GetInitialBackoff().AsDuration(),
			MaxBackoff:     r.GetMaxBackoff().AsDuration(),
		}
	}
	return j
}

func queueFromProto(p *chirpyv1.Queue) *Queue {
	return &Queue{
		Name:      p.GetName(),
		Pending:   p.GetPending(),
		Scheduled: p.GetScheduled(),
		Running:   p.GetRunning(),
		Succeeded: p.GetSucceeded(),
		Dead:      p.GetDead(),
		Canceled:  p.GetCanceled(),
	}
}

func workerFromProto(p *chirpyv1.Worker) *WorkerInfo {
	return &WorkerInfo{
		ID:              p.GetId(),
		Queues:          p.GetQueues(),
		Kind:            p.GetKind(),
		StartedAt:       fromTimestamp(p.GetStartedAt()),
		LastHeartbeatAt: fromTimestamp(p.GetLastHeartbeatAt()),
		RunningJobs:     p.GetRunningJobs(),
	}
}
