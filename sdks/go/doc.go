// Package chirpy is the Go client of Chirpy, a standalone job server built on
// Apalis: push jobs to queues, inspect and manage them, and run workers that
// pull jobs over gRPC.
//
// It is a thin layer over the generated gRPC code in
// [github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1], whose clients stay
// reachable through [Client.JobService] and [Client.WorkerService].
//
// # Producing
//
// [Dial] connects to a server; [Client.Push] stores a job whose payload is any
// value [encoding/json] can marshal:
//
//	client, err := chirpy.Dial(ctx, "localhost:7000")
//	job, err := client.Push(ctx, "email", Email{To: "user@example.com"}, chirpy.Priority(5))
//
// [Client.List] walks a queue's jobs page by page as an iterator, and
// [Client.Get], [Client.Cancel], [Client.Retry], [Client.RetryDead],
// [Client.Queues] and [Client.Workers] cover the rest of the JobService.
//
// # Working
//
// A [Worker] leases jobs from one queue with a long poll, runs a [Handler]
// for each, up to a concurrency limit, and reports each outcome: a nil error
// completes the job with the handler's result; an error is a failed attempt,
// retried after a backoff; [NonRetryable] sends the job to the failure queue
// and [RetryAfter] chooses the wait before the next attempt. Heartbeats keep
// the leases alive and deliver cancellations: a job canceled on the server
// (or whose lease was lost) has its handler's context canceled, with
// [ErrJobCanceled] or [ErrLeaseLost] as the [context.Cause], and its outcome
// is dropped. [Worker.Run] returns once its context is canceled and the
// running handlers have finished; jobs leased but not started are handed
// back.
//
// # Errors
//
// Calls return the server's gRPC status errors unchanged, so
// [google.golang.org/grpc/status.Code] and [google.golang.org/grpc/status.FromError]
// (with details such as google.rpc.BadRequest) work on them; [IsNotFound],
// [IsInvalidArgument] and [IsFailedPrecondition] are shorthands. Errors the
// client finds itself (a payload that is not JSON) carry a status too.
package chirpy
