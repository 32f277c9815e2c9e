package chirpy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// The tests run against a live server: TestMain starts the chirpy binary
// ($CHIRPY_BIN, built by `cargo build --bin chirpy`) on a free loopback port
// with a throwaway SQLite database, and stops it at the end. Each test works
// queues of its own, so tests run in parallel on the one server.

var (
	// testAddr is the address of the server TestMain started.
	testAddr string
	// testClient is connected to it.
	testClient *chirpy.Client
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chirpy-go-sdk-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := startServer(dir, "0", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chirpy go sdk tests:", err)
		return 1
	}
	defer srv.stop()
	testAddr = srv.addr
	// The examples, like the README, read the address from here.
	os.Setenv("CHIRPY_ADDR", srv.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testClient, err = chirpy.Dial(ctx, srv.addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chirpy go sdk tests:", err)
		return 1
	}
	defer testClient.Close()
	return m.Run()
}

// A server is a running chirpy binary.
type server struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

var listening = regexp.MustCompile(`chirpy listening on (127\.0\.0\.1:\d+)`)

// startServer starts the chirpy binary on port ("0" for a free one) with
// its SQLite database in dir, and waits for its listening line. env adds
// to or overrides the test settings.
func startServer(dir, port string, env []string) (*server, error) {
	bin := os.Getenv("CHIRPY_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "chirpy")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	// Stat also tells the test cache that a rebuilt binary changes the
	// results.
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no chirpy binary (build it with `cargo build --bin chirpy`, or set CHIRPY_BIN): %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"CHIRPY_HOST=127.0.0.1",
		"CHIRPY_PORT="+port,
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "chirpy.db"),
		"CHIRPY_LEASE_TTL=3s",
		"CHIRPY_RETRY_INITIAL_BACKOFF=1s",
		"CHIRPY_RETRY_MAX_BACKOFF=1s",
		"CHIRPY_LOG=info",
		"CHIRPY_SHUTDOWN_GRACE=2s",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	srv := &server{cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		// Keep reading to the end: a server whose stdout pipe fills up
		// blocks. Its log goes to stderr with CHIRPY_TEST_LOG=1.
		var log io.Writer = io.Discard
		if os.Getenv("CHIRPY_TEST_LOG") != "" {
			log = os.Stderr
		}
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		for lines.Scan() {
			if m := listening.FindStringSubmatch(lines.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			fmt.Fprintln(log, lines.Text())
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(srv.exited)
	}()
	select {
	case srv.addr = <-addr:
		return srv, nil
	case <-srv.exited:
		return nil, fmt.Errorf("%s exited before listening: %v", bin, cmd.ProcessState)
	case <-time.After(30 * time.Second):
		srv.stop()
		return nil, fmt.Errorf("%s did not say it was listening within 30 s", bin)
	}
}

// stop stops the server by its pid: SIGTERM, then SIGKILL after 5 s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// testContext is the test's context with a deadline.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testQueue returns a queue name of the test's own.
func testQueue(t *testing.T) string {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "-")
	if len(name) > 100 {
		name = name[:100]
	}
	return name + "." + strings.ToLower(rand.Text()[:6])
}

// testLogger is where workers under test log: nowhere, or stderr with
// CHIRPY_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("CHIRPY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// eventually calls cond every 25 ms until it holds, failing the test after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitState waits until the job is in state, and returns it.
func waitState(t *testing.T, queue, id string, state chirpy.JobState, timeout time.Duration) *chirpy.Job {
	t.Helper()
	return waitStateOn(t, testClient, queue, id, state, timeout)
}

// waitStateOn is waitState through client.
func waitStateOn(t *testing.T, client *chirpy.Client, queue, id string, state chirpy.JobState, timeout time.Duration) *chirpy.Job {
	t.Helper()
	var job *chirpy.Job
	eventually(t, timeout, fmt.Sprintf("job %s to be %s", id, state), func() bool {
		var err error
		job, err = client.Get(t.Context(), queue, id)
		if status.Code(err) == codes.Unavailable {
			return false // a server restarting
		}
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return job.State == state
	})
	return job
}

// runWorker runs w until the returned stop is called; stop returns Run's
// error. The test fails if Run has not returned 15 s after stop.
func runWorker(t *testing.T, w *chirpy.Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		t.Helper()
		if stopped {
			return err
		}
		stopped = true
		cancel()
		select {
		case err = <-done:
		case <-time.After(15 * time.Second):
			// Show where it is stuck.
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			err = errors.New("Worker.Run did not return 15 s after its context was canceled")
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return stop
}
