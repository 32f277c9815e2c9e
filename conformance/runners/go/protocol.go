package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/status"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// requestTimeout bounds one request: a client call, or a worker's start or
// graceful stop.
const requestTimeout = 30 * time.Second

// A request is one line of stdin.
type request struct {
	ID   json.RawMessage `json:"id"`
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args"`
}

// A response is one line of stdout: exactly one of Result, Error and
// Unsupported is set.
type response struct {
	ID          json.RawMessage `json:"id"`
	Result      any             `json:"result,omitempty"`
	Error       *errorBody      `json:"error,omitempty"`
	Unsupported string          `json:"unsupported,omitempty"`
}

// errorBody is a failed step: a gRPC code in upper snake case and the
// message.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// unsupportedError is a step this runner cannot express through the SDK:
// an unknown kind or argument, or an argument of a type the SDK does not
// take.
type unsupportedError struct{ reason string }

func (e *unsupportedError) Error() string { return e.reason }

func unsupported(format string, args ...any) error {
	return &unsupportedError{fmt.Sprintf(format, args...)}
}

// A runner executes the steps: client steps through client, worker steps
// through workers. It handles one request at a time.
type runner struct {
	client  *chirpy.Client
	log     *slog.Logger
	workers *workers
}

// handle runs one request line and returns its response; nil for a blank
// line.
func (r *runner) handle(line []byte) *response {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		r.log.Error("cannot parse a request", "cause", err, "line", string(line))
		return &response{ID: json.RawMessage("null"), Error: &errorBody{
			Code: "INTERNAL", Message: "go-runner: not a request: " + err.Error(),
		}}
	}
	if len(req.ID) == 0 {
		req.ID = json.RawMessage("null")
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	result, err := r.step(ctx, req.Kind, req.Args)
	resp := &response{ID: req.ID}
	var unsup *unsupportedError
	switch {
	case errors.As(err, &unsup):
		resp.Unsupported = unsup.reason
	case err != nil:
		resp.Error = errorOf(err)
	case result == nil:
		resp.Result = struct{}{}
	default:
		resp.Result = result
	}
	return resp
}

// step runs one step of kind with its arguments.
func (r *runner) step(ctx context.Context, kind string, args json.RawMessage) (any, error) {
	switch kind {
	case "push":
		return r.push(ctx, args)
	case "batch_push":
		return r.batchPush(ctx, args)
	case "get":
		return r.get(ctx, args)
	case "list":
		return r.list(ctx, args)
	case "cancel":
		return r.cancel(ctx, args)
	case "retry":
		return r.retry(ctx, args)
	case "retry_dead":
		return r.retryDead(ctx, args)
	case "queues":
		return r.queues(ctx, args)
	case "workers":
		return r.listWorkers(ctx, args)
	case "start_worker":
		return r.workers.start(ctx, args)
	case "stop_worker":
		return r.workers.stop(ctx, args)
	case "events":
		return r.workers.events(args)
	}
	return nil, unsupported("unknown kind %s", kind)
}

// errorOf reports err with the gRPC code it carries (the server's, or the
// one the SDK attaches to its own checks); UNKNOWN when it carries none.
func errorOf(err error) *errorBody {
	st := status.Convert(err)
	return &errorBody{Code: rpccode.Code(st.Code()).String(), Message: st.Message()}
}

// decodeArgs decodes a step's arguments into v, a pointer to a struct
// listing the arguments of the kind. An unknown argument, or one of another
// type, is unsupported: the step cannot be expressed as the case means it.
func decodeArgs(kind string, args json.RawMessage, v any) error {
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return unsupported("%s: arguments: %v", kind, err)
	}
	return nil
}

// integer is a JSON number that must be integral (1 and 1.0 alike).
type integer int64

func (n *integer) UnmarshalJSON(data []byte) error {
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("%s is not an integer", data)
	}
	*n = integer(f)
	return nil
}

// A writer writes responses to stdout, one line each, flushed at once.
type writer struct{ out *bufio.Writer }

func newWriter(w io.Writer) *writer { return &writer{out: bufio.NewWriter(w)} }

func (w *writer) write(resp *response) error {
	if resp == nil {
		return nil
	}
	enc := json.NewEncoder(w.out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		// A result the encoder refuses, such as a NaN: report that instead.
		if err := enc.Encode(&response{ID: resp.ID, Error: &errorBody{
			Code: "INTERNAL", Message: "go-runner: cannot encode the result: " + err.Error(),
		}}); err != nil {
			return err
		}
	}
	return w.out.Flush()
}
