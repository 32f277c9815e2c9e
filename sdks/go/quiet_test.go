package chirpy_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
	chirpyv1 "github.com/apalis-dev/chirpy/sdks/go/gen/chirpy/v1"
)

// quietServer is a WorkerService that asks for quiet until a given time:
// the real server sends QUIET only while it shuts down, too briefly to test.
type quietServer struct {
	chirpyv1.UnimplementedWorkerServiceServer
	quietUntil time.Time

	mu     sync.Mutex
	leases []time.Time
}

func (s *quietServer) Heartbeat(context.Context, *chirpyv1.HeartbeatRequest) (*chirpyv1.HeartbeatResponse, error) {
	directive := chirpyv1.WorkerDirective_WORKER_DIRECTIVE_RUN
	if time.Now().Before(s.quietUntil) {
		directive = chirpyv1.WorkerDirective_WORKER_DIRECTIVE_QUIET
	}
	return &chirpyv1.HeartbeatResponse{HeartbeatInterval: durationpb.New(200 * time.Millisecond), Directive: directive}, nil
}

func (s *quietServer) LeaseJobs(ctx context.Context, _ *chirpyv1.LeaseJobsRequest) (*chirpyv1.LeaseJobsResponse, error) {
	s.mu.Lock()
	s.leases = append(s.leases, time.Now())
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
	return &chirpyv1.LeaseJobsResponse{}, nil
}

func TestWorkerQuietPausesLeasing(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &quietServer{quietUntil: time.Now().Add(time.Second)}
	srv := grpc.NewServer()
	chirpyv1.RegisterWorkerServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	w := chirpy.NewWorker(chirpy.NewClient(conn), "q", func(context.Context, *chirpy.Job) (any, error) { return nil, nil },
		chirpy.Logger(testLogger()))
	stop := runWorker(t, w)
	eventually(t, 5*time.Second, "leasing to resume", func() bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return len(fake.leases) > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if first := fake.leases[0]; first.Before(fake.quietUntil) {
		t.Errorf("leased %v before the server lifted its QUIET directive", fake.quietUntil.Sub(first))
	}
}
