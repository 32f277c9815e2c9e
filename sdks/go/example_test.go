package chirpy_test

// These examples are the README's code: TestReadmeMatchesExamples checks
// that every Go block of README.md appears here, line for line (lines
// marked "not in README" are the examples' own plumbing). `go test` runs
// them against the live server of TestMain, whose address is in
// CHIRPY_ADDR.

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc/status"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// Email is the payload of the jobs of the "email" queue.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func Example() {
	ctx := context.Background()
	client, err := chirpy.Dial(ctx, cmp.Or(os.Getenv("CHIRPY_ADDR"), "localhost:7000"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	job, err := client.Push(ctx, "email", Email{To: "user@example.com", Subject: "Welcome"},
		chirpy.Priority(5),
		chirpy.MaxAttempts(10),
		chirpy.Metadata(map[string]string{"tenant": "acme"}),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Queue, job.State, job.Attempts)
	// Output: email PENDING 0
}

func ExampleClient_List() {
	ctx := context.Background()
	client, err := chirpy.Dial(ctx, cmp.Or(os.Getenv("CHIRPY_ADDR"), "localhost:7000"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// With idempotency keys, pushing the same reports again creates nothing.
	for _, month := range []string{"2026-01", "2026-02", "2026-03"} {
		report := map[string]string{"month": month}
		if _, err := client.Push(ctx, "reports", report, chirpy.IdempotencyKey("report-"+month)); err != nil {
			log.Fatal(err)
		}
	}

	// List fetches the pages as the loop goes.
	for job, err := range client.List(ctx, "reports", chirpy.InState(chirpy.JobStatePending)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(job.State, string(job.Payload))
	}
	// Output:
	// PENDING {"month":"2026-01"}
	// PENDING {"month":"2026-02"}
	// PENDING {"month":"2026-03"}
}

func ExampleIsInvalidArgument() {
	ctx := context.Background()
	client, err := chirpy.Dial(ctx, cmp.Or(os.Getenv("CHIRPY_ADDR"), "localhost:7000"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Push(ctx, "no spaces in queue names", Email{})
	fmt.Println(status.Code(err), chirpy.IsInvalidArgument(err))
	fmt.Println(status.Convert(err).Message())
	// Output:
	// InvalidArgument true
	// queue: ' ' is not allowed; use [A-Za-z0-9_.-]
}

// sendEmail is the handler of the "email" queue.
func sendEmail(ctx context.Context, job *chirpy.Job) (any, error) {
	var email Email
	if err := job.Decode(&email); err != nil {
		return nil, chirpy.NonRetryable(err) // a malformed payload will not get better
	}
	if err := deliver(ctx, email); err != nil {
		return nil, err // a failed attempt: retried after a backoff
	}
	return map[string]string{"delivered_to": email.To}, nil // the job's result
}

func ExampleWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, err := chirpy.Dial(ctx, cmp.Or(os.Getenv("CHIRPY_ADDR"), "localhost:7000"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	go pushAndStop(ctx, client, stop) // not in README

	worker := chirpy.NewWorker(client, "email", sendEmail,
		chirpy.Concurrency(8),
		chirpy.ShutdownGrace(time.Minute),
	)
	// Run works the queue until SIGINT or SIGTERM, then stops leasing, lets
	// running jobs finish and hands back the jobs it has not started.
	if err := worker.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: SUCCEEDED {"delivered_to":"ops@example.com"}
}

// deliver stands for sending an email.
func deliver(ctx context.Context, email Email) error {
	return ctx.Err()
}

// pushAndStop pushes an email for ExampleWorker's worker, waits for the
// outcome, prints it and stops the worker, as a SIGTERM would.
func pushAndStop(ctx context.Context, client *chirpy.Client, stop func()) {
	defer stop()
	pushed, err := client.Push(ctx, "email", Email{To: "ops@example.com", Subject: "Report"})
	if err != nil {
		log.Fatal(err)
	}
	for ctx.Err() == nil {
		job, err := client.Get(ctx, "email", pushed.ID)
		if err != nil {
			log.Fatal(err)
		}
		if job.State == chirpy.JobStateSucceeded || job.State == chirpy.JobStateDead {
			fmt.Println(job.State, string(job.Result))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
