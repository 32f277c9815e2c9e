// A Chirpy worker: leases jobs with the LeaseJobs long poll, runs a handler
// on each with bounded concurrency, heartbeats to keep its leases and to
// learn of canceled jobs, reports outcomes in batches, and stops gracefully.
// It uses only WorkerService's unary calls and timers, so it runs on any
// connect transport (gRPC from Node, gRPC-web anywhere).

import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { createClient, Code, ConnectError, type Client, type Transport } from "@connectrpc/connect";
import {
  WorkerDirective,
  WorkerService,
  type HeartbeatResponse,
  type LeasedJob,
} from "../gen/chirpy/v1/worker_service_pb.js";
import { JobStoppedError, NonRetryableError, RetryAfterError } from "../errors.js";
import { jobFromProto, type Job } from "../job.js";
import { toValue, type JsonValue } from "../json.js";
import { consoleLogger, type Logger } from "./logger.js";
import { Backoff, isFatal, Wakeup, withRetries } from "./pace.js";
import { Reporter, type HeldLease, type Outcome } from "./reporter.js";

/** What a handler gets besides its job. */
export interface JobContext {
  /**
   * Aborted when the server canceled the job or its lease expired and the
   * job was handed out again, to another worker or to this one
   * (`signal.reason` is a `JobStoppedError`): stop work, the outcome will not
   * be recorded.
   */
  signal: AbortSignal;
  /** The id this worker registered with. */
  workerId: string;
}

/**
 * Runs one job. What it returns (any JSON value) becomes the job's `result`;
 * a thrown error fails the attempt: `NonRetryableError` sends the job to the
 * failure queue, `RetryAfterError` sets the wait before the next attempt, and
 * anything else is retried after the job's backoff.
 */
export type Handler<P = JsonValue> = (job: Job<P>, context: JobContext) => unknown;

export interface WorkerOptions<P = JsonValue> {
  /** The queue, or queues (1 to 16), to work. */
  queues: string | readonly string[];
  /** Runs each job. */
  handler: Handler<P>;
  /** Handlers running at once; default 1. */
  concurrency?: number;
  /**
   * Jobs to lease ahead of free handler slots, so that a slot that frees up
   * starts the next job without a round trip; default 0. They are handed
   * back, unstarted and with their attempt not counted, by `stop()`.
   */
  prefetch?: number;
  /** The base of the worker id; a random suffix keeps replicas apart. Default `"worker"`. */
  name?: string;
  /** The exact worker id (`[A-Za-z0-9_.:@-]{1,128}`), instead of `name` plus a suffix. */
  workerId?: string;
  /** How long a lease call waits for a job when none is ready: 1000 to 30000 ms; default 20000. */
  longPollMs?: number;
  /** Where to log what cannot be returned to a caller; default: warnings and errors to the console. */
  logger?: Logger;
}

/**
 * A worker that pulls jobs from Chirpy and runs `handler` on them.
 *
 * ```ts
 * const worker = new Worker(transport, { queues: "email", concurrency: 8, handler: sendEmail });
 * process.once("SIGTERM", () => worker.stop());
 * await worker.run();
 * ```
 */
export class Worker<P = JsonValue> {
  /** The id this worker registers with, as listed by `ChirpyClient.workers()`. */
  readonly id: string;

  private readonly client: Client<typeof WorkerService>;
  private readonly queues: string[];
  private readonly handler: Handler<P>;
  private readonly concurrency: number;
  private readonly prefetch: number;
  private readonly longPollMs: number;
  private readonly logger: Logger;
  private readonly reporter: Reporter;

  /** Leases without a reported outcome: running, waiting to start, or being reported. */
  private readonly held = new Map<string, HeldLease>();
  /** Leased and not started, oldest first. */
  private readonly buffer: HeldLease[] = [];
  /** The running handlers. */
  private readonly active = new Set<Promise<void>>();
  /** Wakes the lease loop: a slot freed up, the directive changed, or stop. */
  private readonly wakeup = new Wakeup();

  private heartbeatMs = 10_000;
  private quiet = false;
  private stopping = false;
  private leaseCall: AbortController | undefined;
  private heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatInFlight: Promise<void> | undefined;
  private running: Promise<void> | undefined;

  constructor(transport: Transport, options: WorkerOptions<P>) {
    this.client = createClient(WorkerService, transport);
    this.queues = typeof options.queues === "string" ? [options.queues] : [...options.queues];
    this.handler = options.handler;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    this.prefetch = Math.max(0, Math.floor(options.prefetch ?? 0));
    this.longPollMs = Math.min(30_000, Math.max(1000, options.longPollMs ?? 20_000));
    this.logger = options.logger ?? consoleLogger;
    this.id = options.workerId ?? workerId(options.name ?? "worker");
    this.reporter = new Reporter(this.client, this.logger, (lease) => {
      if (this.held.get(lease.id) === lease) this.held.delete(lease.id);
    });
  }

  /** Handlers running now. */
  get runningJobs(): number {
    return this.active.size;
  }

  /**
   * Registers with the server and works jobs until `stop()` (or `signal`).
   * Resolves once stopped: running handlers finished, their outcomes
   * reported, unstarted jobs handed back. Rejects with a `ConnectError` when
   * the server refuses the worker (a bad queue name or worker id,
   * `Code.InvalidArgument`) or cannot be reached to register.
   */
  run(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.running) throw new Error("this worker is already running");
    const { signal } = options;
    if (signal?.aborted) this.stopping = true;
    signal?.addEventListener("abort", () => void this.stop(), { once: true });
    this.running = this.work();
    return this.running;
  }

  /**
   * Stops gracefully: leases no more jobs, hands back the leased ones not
   * started, lets running handlers finish and reports their outcomes.
   * Resolves once that is done; calling it again returns the same promise.
   */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.leaseCall?.abort();
      this.wakeup.notify();
    }
    return this.running ? this.running.catch(() => undefined) : Promise.resolve();
  }

  private async work(): Promise<void> {
    let fatal: unknown;
    try {
      await withRetries(
        8,
        () => this.heartbeat(),
        (err, ms) => this.logger.warn(`chirpy: cannot register worker ${this.id}, retrying in ${ms} ms`, err),
        () => this.stopping,
      );
      this.logger.info(`chirpy: worker ${this.id} registered for ${this.queues.join(", ")}`);
      this.scheduleHeartbeat();
      await this.leaseLoop();
    } catch (err) {
      // Registration that a stop interrupted is not an error.
      if (!this.stopping || isFatal(err)) fatal = err;
      this.stopping = true;
    }
    await this.drain();
    if (fatal !== undefined) throw ConnectError.from(fatal);
  }

  private async leaseLoop(): Promise<void> {
    const backoff = new Backoff();
    while (!this.stopping) {
      if (this.quiet) {
        // The server is shutting down: lease nothing until a heartbeat says otherwise.
        await this.wakeup.wait(this.heartbeatMs);
        continue;
      }
      const room = this.concurrency + this.prefetch - this.active.size - this.buffer.length;
      if (room <= 0) {
        await this.wakeup.wait();
        continue;
      }
      const call = new AbortController();
      this.leaseCall = call;
      try {
        const response = await this.client.leaseJobs(
          {
            workerId: this.id,
            queues: this.queues,
            maxJobs: Math.min(room, 1000),
            wait: durationFromMs(this.longPollMs),
          },
          // A little longer than the long poll, so a dead connection does not hang the loop.
          { signal: call.signal, timeoutMs: this.longPollMs + 10_000 },
        );
        backoff.reset();
        for (const leased of response.leases) this.hold(leased);
        this.dispatch();
      } catch (err) {
        if (this.stopping && ConnectError.from(err).code === Code.Canceled) break;
        if (isFatal(err)) throw err;
        const ms = backoff.next();
        this.logger.warn(`chirpy: cannot lease jobs, retrying in ${ms} ms`, err);
        await this.wakeup.wait(ms);
      } finally {
        this.leaseCall = undefined;
      }
    }
  }

  /** Records a lease just taken; it waits in the buffer for a slot. */
  private hold(leased: LeasedJob): void {
    const job = leased.job;
    if (!job) return;
    // Leased again while this worker still holds it: the older lease expired
    // (and heartbeats, which name jobs by id, would not report it lost).
    if (this.held.has(job.id)) this.drop(job.id, "lost");
    const lease: HeldLease = { leased, queue: job.queue, id: job.id, dropped: false };
    this.held.set(job.id, lease);
    this.buffer.push(lease);
  }

  /** Starts buffered jobs while there are free slots. */
  private dispatch(): void {
    while (!this.stopping && this.active.size < this.concurrency && this.buffer.length > 0) {
      const lease = this.buffer.shift()!;
      const task: Promise<void> = this.execute(lease).finally(() => {
        this.active.delete(task);
        this.dispatch();
        this.wakeup.notify();
      });
      this.active.add(task);
    }
  }

  private async execute(lease: HeldLease): Promise<void> {
    const controller = new AbortController();
    lease.controller = controller;
    let outcome: Outcome;
    try {
      const job = jobFromProto<P>(lease.leased.job!);
      const result = await this.handler(job, { signal: controller.signal, workerId: this.id });
      outcome = { kind: "succeeded", result: toValue(result === undefined ? null : result, "result") };
    } catch (err) {
      outcome = failure(err);
    }
    if (lease.dropped) return; // canceled or lost: the server would refuse it
    this.reporter.add(lease, outcome);
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatInFlight = this.heartbeat()
        .catch((err) => this.logger.warn("chirpy: heartbeat failed; leases may expire if this lasts", err))
        .finally(() => {
          this.heartbeatInFlight = undefined;
          if (this.heartbeatTimer !== undefined) this.scheduleHeartbeat();
        });
    }, this.heartbeatMs);
  }

  /** Registers the worker, renews its leases, and applies what the server says. */
  private async heartbeat(): Promise<void> {
    const response = await this.client.heartbeat(
      { workerId: this.id, queues: this.queues, runningJobIds: [...this.held.keys()].slice(0, 10_000) },
      { timeoutMs: 10_000 },
    );
    this.apply(response);
  }

  private apply(response: HeartbeatResponse): void {
    for (const id of response.canceledJobIds) this.drop(id, "canceled");
    for (const id of response.lostJobIds) this.drop(id, "lost");
    const quiet = response.directive === WorkerDirective.QUIET;
    if (quiet !== this.quiet) {
      this.quiet = quiet;
      this.logger.info(`chirpy: worker ${this.id} ${quiet ? "paused: the server is shutting down" : "resumed"}`);
      this.wakeup.notify();
    }
    if (response.heartbeatInterval) {
      this.heartbeatMs = Math.min(60_000, Math.max(200, durationMs(response.heartbeatInterval)));
    }
  }

  /** Stops job `id`, canceled or lost on the server: its outcome is not reported. */
  private drop(id: string, why: "canceled" | "lost"): void {
    const lease = this.held.get(id);
    if (!lease) return; // reported meanwhile
    this.held.delete(id);
    lease.dropped = true;
    const waiting = this.buffer.indexOf(lease);
    if (waiting >= 0) this.buffer.splice(waiting, 1);
    lease.controller?.abort(new JobStoppedError(why));
    this.logger.info(`chirpy: stopping job ${id}: ${why}`);
  }

  /** After the lease loop: hand back unstarted jobs, finish, report, stop heartbeating. */
  private async drain(): Promise<void> {
    const unstarted = this.buffer.splice(0);
    for (const lease of unstarted) this.held.delete(lease.id);
    await Promise.all([this.release(unstarted), this.finish()]);
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    await this.heartbeatInFlight;
  }

  private async finish(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active]);
    await this.reporter.idle();
  }

  private async release(leases: HeldLease[]): Promise<void> {
    if (leases.length === 0) return;
    try {
      const { results } = await withRetries(
        5,
        () =>
          this.client.releaseJobs(
            { jobs: leases.map((l) => ({ queue: l.queue, id: l.id, leaseId: l.leased.leaseId })) },
            { timeoutMs: 10_000 },
          ),
        (err, ms) => this.logger.warn(`chirpy: cannot hand back unstarted jobs, retrying in ${ms} ms`, err),
      );
      results.forEach((result, i) => {
        if (result.outcome.case === "error") {
          this.logger.info(`chirpy: job ${leases[i]?.id} not handed back: ${result.outcome.value.message}`);
        }
      });
      this.logger.info(`chirpy: handed back ${leases.length} unstarted job(s)`);
    } catch (err) {
      this.logger.warn("chirpy: cannot hand back unstarted jobs; their leases will expire", err);
    }
  }
}

/** Reads the handler error conventions. */
function failure(err: unknown): Outcome {
  const error = err instanceof Error ? err.message || err.name : String(err);
  if (err instanceof NonRetryableError) return { kind: "failed", error, nonRetryable: true };
  if (err instanceof RetryAfterError) {
    return { kind: "failed", error, nonRetryable: false, retryAfterMs: err.retryAfterMs };
  }
  return { kind: "failed", error, nonRetryable: false };
}

/**
 * A worker id for `name`: its characters outside `[A-Za-z0-9_.:@-]`
 * replaced, plus a random suffix so that replicas sharing a name stay apart.
 */
export function workerId(name: string): string {
  const base = name.replace(/[^A-Za-z0-9_.:@-]/g, "-").slice(0, 110) || "worker";
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  let suffix = "";
  for (let i = 0; i < 8; i++) suffix += alphabet[Math.floor(Math.random() * alphabet.length)];
  return `${base}.${suffix}`;
}
