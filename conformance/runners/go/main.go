// Command go-runner is the Go SDK's conformance runner (see
// conformance/README.md): it reads one JSON request per line on stdin, runs
// each through the public API of github.com/apalis-dev/chirpy/sdks/go, and
// writes one JSON response per line on stdout, in order. It logs to stderr
// only. When stdin closes it stops its workers and exits 0.
//
// The server is $CHIRPY_URL, such as http://127.0.0.1:7011.
package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	chirpy "github.com/apalis-dev/chirpy/sdks/go"
)

// dialTimeout bounds the wait for the server at start.
const dialTimeout = 30 * time.Second

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, os.Stdin, os.Stdout); err != nil {
		log.Error("go-runner failed", "cause", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, stdin io.Reader, stdout io.Writer) error {
	url := os.Getenv("CHIRPY_URL")
	if url == "" {
		return errors.New("CHIRPY_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	client, err := chirpy.Dial(ctx, url)
	cancel()
	if err != nil {
		return err
	}
	defer client.Close()
	log.Info("go-runner ready", "server", url)

	r := &runner{client: client, log: log, workers: newWorkers(client, log)}
	in := bufio.NewReader(stdin)
	out := newWriter(stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if err := out.write(r.handle(line)); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	log.Info("stdin closed; stopping the workers")
	r.workers.stopAll()
	return nil
}
