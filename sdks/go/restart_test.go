package chirpy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// A server restart is a transient failure: the worker keeps retrying its
// calls, reports the outcome of a job that finished while the server was
// down, and works new jobs once the server is back.
func TestWorkerSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	ctx, queue, dir := testContext(t), testQueue(t), t.TempDir()
	// A lease long enough to outlast the restart.
	env := []string{"CHIRPY_LEASE_TTL=15s"}
	srv, err := startServer(dir, "0", env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.stop() })
	client, err := chirpy.Dial(ctx, srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	release := make(chan struct{})
	started := make(chan string, 2)
	w := chirpy.NewWorker(client, queue, func(ctx context.Context, job *chirpy.Job) (any, error) {
		started <- job.ID
		var wait bool
		_ = job.Decode(&wait)
		if wait {
			<-release
		}
		return "ok", nil
	}, chirpy.Logger(testLogger()))
	stop := runWorker(t, w)

	before, err := client.Push(ctx, queue, true)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	srv.stop()
	// The handler returns while the server is down; its outcome waits.
	close(release)
	time.Sleep(time.Second)
	port := srv.addr[strings.LastIndex(srv.addr, ":")+1:]
	srv, err = startServer(dir, port, env)
	if err != nil {
		t.Fatal(err)
	}

	job := waitStateOn(t, client, queue, before.ID, chirpy.JobStateSucceeded, 15*time.Second)
	if job.Attempts != 1 {
		t.Errorf("the job that finished during the restart ran %d times", job.Attempts)
	}
	after, err := client.Push(ctx, queue, false)
	if err != nil {
		t.Fatal(err)
	}
	waitStateOn(t, client, queue, after.ID, chirpy.JobStateSucceeded, 15*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
