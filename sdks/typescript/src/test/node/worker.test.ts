// Worker against a live server (lease TTL 3 s, so heartbeats every second;
// retry backoff 1 s). Faults and server directives are injected with a
// connect interceptor on the worker's transport.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  ChirpyClient,
  createNodeTransport,
  JobState,
  JobStoppedError,
  NonRetryableError,
  RetryAfterError,
  Worker,
  type Handler,
  type Job,
  type Logger,
  type WorkerOptions,
} from "@chirpy/client/node";
import { WorkerDirective, type HeartbeatRequest, type HeartbeatResponse } from "@chirpy/client/v1";
import { startServer, type ChirpyServer } from "../support/server.js";
import { eventually, gate, sleep } from "../support/wait.js";

let server: ChirpyServer;
let client: ChirpyClient;
before(async () => {
  server = await startServer();
  client = new ChirpyClient(createNodeTransport(server.url));
});
/** Every worker a test started, stopped after each test even when it failed. */
const workers: Worker<never>[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
after(async () => {
  await server?.stop();
});

/** What a test's worker said, instead of the console. */
class Log implements Logger {
  lines: string[] = [];
  info = (m: string) => void this.lines.push(`info ${m}`);
  warn = (m: string) => void this.lines.push(`warn ${m}`);
  error = (m: string) => void this.lines.push(`error ${m}`);
}

/** The calls a worker made, and switches to fault them. */
class Wire {
  calls: Array<{ method: string; message: unknown; at: number }> = [];
  /** Methods that fail with UNAVAILABLE while their count is above zero. */
  failing = new Map<string, number>();
  /** Rewrites heartbeat responses to QUIET while set. */
  quiet = false;
  /** Heartbeats fail while set. */
  heartbeatsDown = false;

  interceptor: Interceptor = (next) => async (req) => {
    const method = req.method.name;
    this.calls.push({ method, message: req.message, at: Date.now() });
    const left = this.failing.get(method) ?? 0;
    if (left > 0) {
      this.failing.set(method, left - 1);
      throw new ConnectError("injected fault", Code.Unavailable);
    }
    if (method === "Heartbeat" && this.heartbeatsDown) throw new ConnectError("injected fault", Code.Unavailable);
    const res = await next(req);
    if (method === "Heartbeat" && this.quiet && !res.stream) {
      (res.message as HeartbeatResponse).directive = WorkerDirective.QUIET;
    }
    return res;
  };

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }
}

interface Started<P> {
  worker: Worker<P>;
  run: Promise<void>;
  log: Log;
  wire: Wire;
}

function start<P = unknown>(queue: string, handler: Handler<P>, options: Partial<WorkerOptions<P>> = {}): Started<P> {
  const log = new Log();
  const wire = new Wire();
  const transport = createNodeTransport(server.url, { interceptors: [wire.interceptor] });
  const worker = new Worker<P>(transport, { queues: queue, handler, logger: log, name: queue, ...options });
  const run = worker.run();
  workers.push(worker as Worker<never>);
  return { worker, run, log, wire };
}

function stateOf(queue: string, id: string, state: JobState): Promise<Job> {
  return eventually(`job ${id} ${JobState[state]}`, async () => {
    const job = await client.get(queue, id);
    return job.state === state ? job : undefined;
  });
}

describe("Worker", () => {
  test("runs a job and stores what the handler returns", async () => {
    const seen: Job<{ to: string }>[] = [];
    const { job } = await client.push("w.ok", { to: "a@example.com" }, { metadata: { k: "v" } });
    const w = start<{ to: string }>("w.ok", async (job, { workerId }) => {
      seen.push(job);
      if (job.payload.to.startsWith("nobody")) return; // no result
      return { sent: job.payload.to, by: workerId };
    });
    const done = await stateOf("w.ok", job.id, JobState.SUCCEEDED);
    assert.deepEqual(done.result, { sent: "a@example.com", by: w.worker.id });
    assert.equal(done.attempts, 1);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.id, job.id);
    assert.equal(seen[0]!.state, JobState.RUNNING);
    assert.deepEqual(seen[0]!.metadata, { k: "v" });
    assert.equal(seen[0]!.lease?.workerId, w.worker.id);
    assert.match(w.worker.id, /^w\.ok\.[0-9a-z]{8}$/);

    // A handler that returns nothing stores a null result.
    const none = await client.push("w.ok", { to: "nobody@example.com" });
    assert.equal((await stateOf("w.ok", none.job.id, JobState.SUCCEEDED)).result, null);
    await w.worker.stop();
    await w.run;
    assert.equal(w.wire.count("CompleteJob"), 0, "outcomes go through the batch calls");
    assert.ok(w.wire.count("BatchCompleteJobs") >= 1);
  });

  test("a thrown error is a failed attempt, retried until the job is DEAD", async () => {
    const { job } = await client.push("w.fail", {}, { maxAttempts: 2 });
    let attempts = 0;
    const w = start("w.fail", async () => {
      attempts++;
      throw new Error(`boom ${attempts}`);
    });
    const scheduled = await stateOf("w.fail", job.id, JobState.SCHEDULED);
    assert.equal(scheduled.lastError, "boom 1");
    const dead = await stateOf("w.fail", job.id, JobState.DEAD);
    assert.equal(dead.attempts, 2);
    assert.equal(dead.lastError, "boom 2");
    assert.equal(attempts, 2);
    await w.worker.stop();
  });

  test("NonRetryableError sends the job to the failure queue at once", async () => {
    const { job } = await client.push("w.abort", { user: 404 });
    const w = start("w.abort", async () => {
      throw new NonRetryableError("no such user");
    });
    const dead = await stateOf("w.abort", job.id, JobState.DEAD);
    assert.equal(dead.attempts, 1);
    assert.equal(dead.maxAttempts, 1);
    assert.equal(dead.lastError, "no such user");
    await w.worker.stop();
  });

  test("RetryAfterError sets the wait before the next attempt", async () => {
    const { job } = await client.push("w.later", {});
    let attempts = 0;
    const failedAt: number[] = [];
    const w = start("w.later", async () => {
      if (++attempts === 1) {
        failedAt.push(Date.now());
        throw new RetryAfterError(2500, "rate limited");
      }
      return "ok";
    });
    const scheduled = await stateOf("w.later", job.id, JobState.SCHEDULED);
    assert.equal(scheduled.lastError, "rate limited");
    // The server's default backoff here is 1 s: 2.5 s means the hint was used.
    const wait = scheduled.scheduledAt!.getTime() - failedAt[0]!;
    assert.ok(wait >= 2000 && wait <= 4000, `scheduled ${wait} ms after the failure`);
    const done = await stateOf("w.later", job.id, JobState.SUCCEEDED);
    assert.equal(done.attempts, 2);
    assert.ok(Date.now() - failedAt[0]! >= 2000);
    await w.worker.stop();
  });

  test("canceling a running job aborts the handler's signal and drops its outcome", async () => {
    const { job } = await client.push("w.cancel", {});
    const started = gate();
    let reason: unknown;
    const w = start("w.cancel", async (_job, { signal }) => {
      started.open();
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      reason = signal.reason;
      return "finished anyway";
    });
    await started.promise;
    const t0 = Date.now();
    await client.cancel("w.cancel", job.id);
    await eventually("the handler's abort", () => reason !== undefined);
    assert.ok(Date.now() - t0 < 2500, "learned at the next heartbeat");
    assert.ok(reason instanceof JobStoppedError);
    assert.equal(reason.why, "canceled");
    await w.worker.stop();
    await w.run;
    const after = await client.get("w.cancel", job.id);
    assert.equal(after.state, JobState.CANCELED);
    assert.equal(after.result, null);
    assert.equal(w.wire.count("BatchCompleteJobs"), 0);
  });

  test("heartbeats list the running jobs and keep their leases past the TTL", async () => {
    const { job } = await client.push("w.long", {});
    const w = start("w.long", async () => {
      await sleep(4500); // longer than the 3 s lease TTL
      return "done";
    });
    const done = await stateOf("w.long", job.id, JobState.SUCCEEDED);
    assert.equal(done.attempts, 1);
    const beats = w.wire.calls.filter((c) => c.method === "Heartbeat");
    const listing = beats.filter((c) => (c.message as HeartbeatRequest).runningJobIds.includes(job.id));
    assert.ok(listing.length >= 3, `${listing.length} heartbeats listed the job`);
    // At the server's suggested interval, a third of the TTL (1 s).
    const gaps = listing.slice(1).map((c, i) => c.at - listing[i]!.at);
    for (const gap of gaps) assert.ok(gap >= 800 && gap <= 2500, `heartbeat gap ${gap} ms`);
    assert.deepEqual((beats[0]!.message as HeartbeatRequest).queues, ["w.long"]);
    await w.worker.stop();
  });

  test("a job whose lease was lost is aborted and runs again", async () => {
    const { job } = await client.push("w.lost", {});
    const reasons: unknown[] = [];
    let runs = 0;
    const w = start("w.lost", async (_job, { signal }) => {
      if (++runs > 1) return "second run";
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      reasons.push(signal.reason);
      return "first run";
    });
    await eventually("the first run", () => runs === 1);
    w.wire.heartbeatsDown = true; // the lease expires after 3 s
    await eventually("the lease to expire", async () => (await client.get("w.lost", job.id)).state === JobState.PENDING || undefined, 8000);
    w.wire.heartbeatsDown = false;
    const done = await stateOf("w.lost", job.id, JobState.SUCCEEDED);
    assert.equal(done.result, "second run");
    assert.equal(done.attempts, 2);
    assert.equal(reasons.length, 1);
    assert.equal((reasons[0] as JobStoppedError).why, "lost");
    await w.worker.stop();
  });

  test("a job leased again by the same worker aborts the run of the expired lease", async () => {
    const { job } = await client.push("w.relost", {});
    const reasons: unknown[] = [];
    let runs = 0;
    // A free slot, so the worker's own long poll takes the job back once its lease expires.
    const w = start(
      "w.relost",
      async (leased, { signal }) => {
        if (++runs > 1) return `run ${runs}, attempt ${leased.attempts}`;
        // Not forever, so that a failing test still stops its worker.
        await Promise.race([new Promise((resolve) => signal.addEventListener("abort", resolve)), sleep(15_000)]);
        if (signal.aborted) reasons.push(signal.reason);
        return "first run";
      },
      { concurrency: 2 },
    );
    await eventually("the first run", () => runs === 1);
    w.wire.heartbeatsDown = true; // the lease expires after 3 s
    await eventually("the second run", () => runs === 2, 10_000);
    w.wire.heartbeatsDown = false;
    await eventually("the first run's abort", () => reasons.length === 1);
    assert.ok(reasons[0] instanceof JobStoppedError);
    assert.equal(reasons[0].why, "lost");
    const done = await stateOf("w.relost", job.id, JobState.SUCCEEDED);
    assert.equal(done.result, "run 2, attempt 2");
    assert.equal(done.attempts, 2);
    await w.worker.stop();
    assert.ok(w.log.lines.includes(`info chirpy: stopping job ${job.id}: lost`), w.log.lines.join("\n"));
  });

  test("runs at most `concurrency` handlers at once, and batches outcomes", async () => {
    const results = await client.batchPush(
      "w.conc",
      Array.from({ length: 9 }, (_, i) => ({ payload: i })),
    );
    let now = 0;
    let peak = 0;
    const w = start(
      "w.conc",
      async () => {
        peak = Math.max(peak, ++now);
        await sleep(300);
        now--;
      },
      { concurrency: 3 },
    );
    for (const r of results) await stateOf("w.conc", r.job.id, JobState.SUCCEEDED);
    assert.equal(peak, 3);
    await w.worker.stop();
    const batches = w.wire.calls.filter((c) => c.method === "BatchCompleteJobs");
    const sizes = batches.map((c) => (c.message as { jobs: unknown[] }).jobs.length);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      9,
    );
    assert.ok(sizes.some((n) => n > 1), `batch sizes ${sizes}`);
    const leases = w.wire.calls.filter((c) => c.method === "LeaseJobs").map((c) => (c.message as { maxJobs: number }).maxJobs);
    assert.equal(leases[0], 3, "leases as many jobs as there are free slots");
  });

  test("stop() lets running handlers finish and hands back unstarted jobs", async () => {
    const results = await client.batchPush("w.stop", [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    const started = gate();
    const release = gate();
    const ran: unknown[] = [];
    const w = start(
      "w.stop",
      async (job) => {
        ran.push(job.payload);
        started.open();
        await release.promise;
        return "finished";
      },
      { concurrency: 1, prefetch: 2 },
    );
    await started.promise;
    await eventually("all three leased", async () => (await client.queues()).find((q) => q.name === "w.stop")?.running === 3);

    let stopped = false;
    const stopping = w.worker.stop().then(() => (stopped = true));
    // The two unstarted jobs are back at once, their attempt not counted.
    const others = results.map((r) => r.job.id).filter((_, i) => i + 1 !== ran[0]);
    for (const id of others) {
      const job = await stateOf("w.stop", id, JobState.PENDING);
      assert.equal(job.attempts, 0);
    }
    assert.equal(stopped, false, "stop waits for the running handler");
    release.open();
    await stopping;
    await w.run;
    assert.deepEqual(ran.length, 1);
    const finished = await client.get("w.stop", results[(ran[0] as number) - 1]!.job.id);
    assert.equal(finished.state, JobState.SUCCEEDED);
    assert.equal(finished.result, "finished");
    assert.equal(w.worker.runningJobs, 0);
    assert.equal(w.wire.count("ReleaseJobs"), 1);
    const leasesAfterStop = w.wire.calls.filter((c) => c.method === "LeaseJobs").length;
    await sleep(300);
    assert.equal(w.wire.calls.filter((c) => c.method === "LeaseJobs").length, leasesAfterStop);
  });

  test("the QUIET directive pauses leasing until the server says RUN", async () => {
    const w = start("w.quiet", async () => "ok");
    await eventually("a long poll", () => w.wire.count("LeaseJobs") >= 1);
    w.wire.quiet = true;
    const beats = w.wire.count("Heartbeat");
    await eventually("a quiet heartbeat answered", () => w.wire.count("Heartbeat") >= beats + 2, 5000);
    const leaseCalls = w.wire.count("LeaseJobs");
    // The long poll in flight when QUIET arrived still takes a job; then leasing pauses.
    const { job: first } = await client.push("w.quiet", {});
    await stateOf("w.quiet", first.id, JobState.SUCCEEDED);
    const { job } = await client.push("w.quiet", {});
    await sleep(2000);
    assert.equal((await client.get("w.quiet", job.id)).state, JobState.PENDING);
    assert.equal(w.wire.count("LeaseJobs"), leaseCalls, "no lease call while quiet");
    w.wire.quiet = false;
    await stateOf("w.quiet", job.id, JobState.SUCCEEDED);
    assert.ok(w.log.lines.some((l) => l.includes("paused")));
    assert.ok(w.log.lines.some((l) => l.includes("resumed")));
  });

  test("transient errors are retried with backoff", async () => {
    const { job } = await client.push("w.flaky", {});
    const log = new Log();
    const wire = new Wire();
    wire.failing.set("Heartbeat", 2); // registration
    wire.failing.set("LeaseJobs", 3);
    wire.failing.set("BatchCompleteJobs", 2);
    const worker = new Worker(createNodeTransport(server.url, { interceptors: [wire.interceptor] }), {
      queues: "w.flaky",
      handler: async () => "ok",
      logger: log,
    });
    const run = worker.run();
    workers.push(worker as Worker<never>);
    await stateOf("w.flaky", job.id, JobState.SUCCEEDED);
    assert.equal(wire.count("BatchCompleteJobs"), 3);
    assert.ok(log.lines.filter((l) => l.startsWith("warn")).length >= 7, log.lines.join("\n"));
    await worker.stop();
    await run;
  });

  test("rides out a server restart", async () => {
    const first = await startServer();
    const log = new Log();
    const worker = new Worker(createNodeTransport(first.url), {
      queues: "w.restart",
      handler: async () => "after the restart",
      logger: log,
    });
    const run = worker.run();
    workers.push(worker as Worker<never>);
    let second: ChirpyServer | undefined;
    try {
      await eventually("registration", async () => (await new ChirpyClient(createNodeTransport(first.url)).workers()).length === 1);
      await first.stop({ keepData: true });
      await sleep(500);
      second = await startServer({ port: first.port, dir: first.dir });
      const other = new ChirpyClient(createNodeTransport(second.url));
      const { job } = await other.push("w.restart", {});
      const done = await eventually("the job to run", async () => {
        const got = await other.get("w.restart", job.id);
        return got.state === JobState.SUCCEEDED ? got : undefined;
      });
      assert.equal(done.result, "after the restart");
      assert.ok(log.lines.some((l) => l.startsWith("warn chirpy: cannot lease jobs")), log.lines.join("\n"));
      await worker.stop();
      await run;
    } finally {
      await worker.stop();
      await (second ?? first).stop();
    }
  });

  test("a queue the server refuses makes run() reject", async () => {
    const worker = new Worker(createNodeTransport(server.url), {
      queues: "no spaces allowed",
      handler: async () => "ok",
      logger: new Log(),
    });
    await assert.rejects(worker.run(), (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument);
  });

  test("works over gRPC-web too, stopped by an AbortSignal", async () => {
    const { job } = await client.push("w.web", { n: 1 });
    const worker = new Worker<{ n: number }>(createNodeTransport(server.url, { protocol: "grpc-web" }), {
      queues: ["w.web", "w.web2"],
      handler: async (job) => job.payload.n + 1,
      logger: new Log(),
    });
    const stop = new AbortController();
    const run = worker.run({ signal: stop.signal });
    workers.push(worker as Worker<never>);
    const done = await stateOf("w.web", job.id, JobState.SUCCEEDED);
    assert.equal(done.result, 2);
    stop.abort();
    await run;
  });
});
