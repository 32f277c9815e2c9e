// The worker steps (`start_worker`, `stop_worker`, `events`) and the one
// handler every worker runs, which does what the job's payload says in `do`.

import {
  NonRetryableError,
  Worker,
  type ChirpyClient,
  type Job,
  type JobContext,
  type JsonObject,
  type JsonValue,
  type Logger,
  type Transport,
} from "@chirpy/client";
import { Args, isObject, Unsupported } from "./protocol.js";

/** What a handler did, as `events` reports it. */
export interface HandlerEvent {
  /** The handle of the worker (`start_worker`'s `worker`). */
  worker: string;
  job: string;
  /** The attempt number the SDK gave the handler: the leased job's `attempts`. */
  attempt: number;
  event: "started" | "succeeded" | "failed" | "canceled";
}

/** A worker's concurrency when `start_worker` gives none. */
const DEFAULT_CONCURRENCY = 4;

/** How long `start_worker` waits for the worker to register. */
const REGISTER_TIMEOUT_MS = 30_000;

/** `await_cancel`'s wait when the payload gives no `ms`. */
const AWAIT_CANCEL_DEFAULT_MS = 30_000;

/** The SDK's logger, to stderr: stdout is the protocol's. */
function stderrLogger(handle: string): Logger {
  const prefix = `[typescript-runner ${handle}]`;
  return {
    info: (message, ...details) => console.error(prefix, message, ...details),
    warn: (message, ...details) => console.error(prefix, message, ...details),
    error: (message, ...details) => console.error(prefix, message, ...details),
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves after `ms`, or rejects with `signal.reason` once `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A payload field as a number; `fallback` when missing or null. Another type
 * fails the job for good: the case is wrong, and retrying will not fix it.
 */
function numberField(payload: JsonObject, key: string, fallback: number): number {
  const value = payload[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value === "number") return value;
  throw new NonRetryableError(`typescript-runner: payload.${key}: want a number, got ${JSON.stringify(value)}`);
}

/** `payload.error` as the failure's message. */
function errorMessage(payload: JsonObject): string {
  const error = payload["error"];
  if (error === undefined || error === null) return "";
  return typeof error === "string" ? error : JSON.stringify(error);
}

/**
 * Does what the payload says (conformance/README.md, "Worker steps"): returns
 * the job's result, or throws as the SDK's handler conventions say: an
 * `Error` for a retryable failure, `NonRetryableError` for a permanent one,
 * and the signal's reason (a `JobStoppedError`) when the SDK aborted it.
 */
async function behave(payload: JsonValue, attempt: number, signal: AbortSignal): Promise<JsonValue> {
  const fields: JsonObject = isObject(payload) ? payload : {};
  const what = fields["do"] ?? "succeed";
  const result = fields["result"] ?? null;
  switch (what) {
    case "succeed":
      return result;
    case "fail":
      throw new Error(errorMessage(fields));
    case "fail_permanently":
      throw new NonRetryableError(errorMessage(fields));
    case "fail_until":
      if (attempt < numberField(fields, "attempt", 0)) throw new Error(errorMessage(fields));
      return result;
    case "sleep":
      // Like any handler that honours its signal, a sleep stops when the job is canceled.
      await sleep(numberField(fields, "ms", 0), signal);
      return result;
    case "await_cancel": {
      const ms = numberField(fields, "ms", AWAIT_CANCEL_DEFAULT_MS);
      await sleep(ms, signal); // rejects with the signal's reason once the SDK aborts it
      throw new Error(`await_cancel: not canceled within ${ms} ms`);
    }
    default:
      throw new NonRetryableError(`typescript-runner: unknown do ${JSON.stringify(what)}`);
  }
}

/** The workers this runner started, by handle, and what their handlers did. */
export class Workers {
  private readonly workers = new Map<string, Worker>();
  private readonly events: HandlerEvent[] = [];

  constructor(
    private readonly transport: Transport,
    private readonly client: ChirpyClient,
  ) {}

  /** `start_worker`: resolves once the server lists the worker (it has registered and is leasing). */
  async start(args: Args): Promise<JsonValue> {
    args.allow("worker", "queue", "concurrency");
    const handle = args.string("worker");
    if (handle === undefined) throw new Unsupported("start_worker: worker: missing");
    if (this.workers.has(handle)) throw new Unsupported(`start_worker: the handle ${handle} already has a worker`);
    const worker = new Worker(this.transport, {
      queues: args.string("queue") ?? "",
      concurrency: args.integer("concurrency") ?? DEFAULT_CONCURRENCY,
      name: handle,
      logger: stderrLogger(handle),
      handler: (job, context) => this.handle(handle, job, context),
    });
    this.workers.set(handle, worker);

    // run() settles only when the worker stops: resolved after stop(),
    // rejected when the server refuses it or cannot be reached to register.
    let ended: { error: unknown } | undefined;
    const run = worker.run().then(
      () => {
        ended ??= { error: new Error(`typescript-runner: worker ${handle} stopped before the server listed it`) };
      },
      (error: unknown) => {
        ended ??= { error };
        console.error(`[typescript-runner ${handle}] worker ended: ${String(error)}`);
      },
    );

    try {
      // Run has no "running" signal of its own: the worker is running once
      // the server lists it (its first heartbeat registers it, and its lease
      // loop follows at once).
      const deadline = Date.now() + REGISTER_TIMEOUT_MS;
      let lastError: unknown;
      for (;;) {
        if (ended) throw ended.error;
        try {
          if ((await this.client.workers()).some((w) => w.id === worker.id)) return {};
        } catch (err) {
          lastError = err; // the deadline ends the wait
        }
        if (Date.now() > deadline) {
          throw lastError ?? new Error(`typescript-runner: worker ${handle} not listed by the server within ${REGISTER_TIMEOUT_MS} ms`);
        }
        await Promise.race([run, delay(50)]);
      }
    } catch (err) {
      this.workers.delete(handle);
      await worker.stop();
      throw err;
    }
  }

  /** `stop_worker`: resolves once the worker has stopped gracefully. */
  async stop(args: Args): Promise<JsonValue> {
    args.allow("worker");
    const handle = args.string("worker");
    if (handle === undefined) throw new Unsupported("stop_worker: worker: missing");
    const worker = this.workers.get(handle);
    if (!worker) throw new Unsupported(`stop_worker: no worker has the handle ${handle}`);
    this.workers.delete(handle);
    await worker.stop();
    return {};
  }

  /** `events`: everything every handler did so far. */
  list(args: Args): JsonValue {
    args.allow();
    return { events: this.events.map((e) => ({ ...e })) };
  }

  /** Stops every worker gracefully, at once. */
  async stopAll(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.stop()));
  }

  private async handle(worker: string, job: Job, context: JobContext): Promise<JsonValue> {
    const attempt = job.attempts;
    const record = (event: HandlerEvent["event"]) => this.events.push({ worker, job: job.id, attempt, event });
    record("started");
    try {
      const result = await behave(job.payload, attempt, context.signal);
      record("succeeded");
      return result;
    } catch (err) {
      // The SDK told the handler (its signal, reason a JobStoppedError) and it stopped.
      record(context.signal.aborted && err === context.signal.reason ? "canceled" : "failed");
      throw err;
    }
  }
}
