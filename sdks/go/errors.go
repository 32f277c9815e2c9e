package chirpy

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The causes a [Worker] gives when it cancels a handler's context; read
// them with [context.Cause].
var (
	// ErrJobCanceled: the job was canceled on the server. Its outcome is
	// not reported.
	ErrJobCanceled = errors.New("chirpy: job canceled")
	// ErrLeaseLost: the worker no longer holds the job's lease (it expired
	// and the job was leased again or finished). Its outcome is not
	// reported.
	ErrLeaseLost = errors.New("chirpy: lease lost")
	// ErrWorkerStopped: the worker is stopping and the shutdown grace
	// period ran out. The handler's outcome is still reported.
	ErrWorkerStopped = errors.New("chirpy: worker stopped")
)

// NonRetryable marks a handler's error as final: the job goes to the
// failure queue (dead) whatever its attempts left. NonRetryable(nil) is nil.
// The mark survives wrapping with %w.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryableError{err}
}

// RetryAfter marks a handler's error with the wait before the next attempt,
// instead of the job's backoff. RetryAfter(nil, d) is nil. The mark
// survives wrapping with %w.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err, d}
}

type nonRetryableError struct{ err error }

func (e *nonRetryableError) Error() string { return e.err.Error() }
func (e *nonRetryableError) Unwrap() error { return e.err }

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// IsNotFound reports whether err is a NOT_FOUND status: no such job.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// IsInvalidArgument reports whether err is an INVALID_ARGUMENT status: a
// request the server refused as malformed (the message names the field).
func IsInvalidArgument(err error) bool { return status.Code(err) == codes.InvalidArgument }

// IsFailedPrecondition reports whether err is a FAILED_PRECONDITION status:
// the job is not in a state that allows the call (canceling a finished job,
// retrying one that is not dead, reporting through a lost lease).
func IsFailedPrecondition(err error) bool { return status.Code(err) == codes.FailedPrecondition }

// permanent reports whether retrying a worker call that failed with err
// cannot help: the request itself is wrong. Anything else (the server
// restarting, a network blip, a timeout) is worth another try.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.Unauthenticated:
		return true
	}
	return false
}
