// The producer and operator client: JobService's calls with JSON payloads,
// `Date`s and plain objects. It works over any connect transport (gRPC from
// Node, gRPC-web from browsers); it knows nothing of either.

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type CallOptions as ConnectCallOptions, type Client, type Transport } from "@connectrpc/connect";
import { RetryPolicySchema } from "./gen/chirpy/v1/job_pb.js";
import { JobService, PushJobRequestSchema, type PushJobRequest } from "./gen/chirpy/v1/job_service_pb.js";
import {
  jobFromProto,
  queueFromProto,
  workerFromProto,
  type Job,
  type JobState,
  type QueueInfo,
  type RetryPolicy,
  type WorkerInfo,
} from "./job.js";
import { toValue, type JsonValue } from "./json.js";

/** Per-call options: cancellation, a deadline, extra request headers. */
export type CallOptions = Pick<ConnectCallOptions, "signal" | "timeoutMs" | "headers">;

/** How to push a job; every field is optional. */
export interface PushOptions {
  /** When the job may run; unset or in the past means now. */
  scheduledAt?: Date;
  /** Higher runs first; zero or more, default 0. */
  priority?: number;
  /** Attempts before the job is dead: 1 to 1000; unset means the server's default (25). */
  maxAttempts?: number;
  /** A push whose key already exists in the queue returns the existing job. */
  idempotencyKey?: string;
  /** String pairs for the worker; keys must not start with `chirpy.`. */
  metadata?: Record<string, string>;
  /** The job's own exponential backoff; unset means the server's default. */
  retryPolicy?: RetryPolicy;
}

/** One job of [`ChirpyClient.batchPush`]. */
export interface BatchJob extends PushOptions {
  payload: unknown;
}

/** What a push returns. */
export interface PushResult<P = JsonValue> {
  /** The job as stored: the new one, or the existing one when `deduplicated`. */
  job: Job<P>;
  /** True when the idempotency key matched an existing job. */
  deduplicated: boolean;
}

/** Which jobs to list. */
export interface ListOptions extends CallOptions {
  /** Only jobs in this state; unset lists every state. */
  state?: JobState;
  /** Jobs per page, 1 to 1000; unset means the server's default (100). */
  pageSize?: number;
  /** Start from this page (a `nextPageToken`) instead of the first. */
  pageToken?: string;
}

/** One page of [`ChirpyClient.listPage`]. */
export interface JobPage<P = JsonValue> {
  jobs: Job<P>[];
  /** Pass as `pageToken` for the next page; `""` on the last page. */
  nextPageToken: string;
}

/**
 * A client of Chirpy's `JobService`: push, inspect and manage jobs.
 *
 * Errors are `ConnectError`s carrying the server's gRPC code
 * (`Code.NotFound`, `Code.InvalidArgument`, `Code.FailedPrecondition`, ...).
 *
 * ```ts
 * const client = new ChirpyClient(createNodeTransport("http://localhost:7000"));
 * const { job } = await client.push("email", { to: "user@example.com" });
 * ```
 */
export class ChirpyClient {
  /** The generated client, for anything this class does not cover. */
  readonly raw: Client<typeof JobService>;

  constructor(transport: Transport) {
    this.raw = createClient(JobService, transport);
  }

  /** Pushes one job. `payload` is anything `JSON.stringify` accepts. */
  async push<P = JsonValue>(
    queue: string,
    payload: unknown,
    options: PushOptions & CallOptions = {},
  ): Promise<PushResult<P>> {
    const response = await this.raw.pushJob(pushRequest(queue, payload, options), callOptions(options));
    return { job: jobFromProto<P>(response.job!), deduplicated: response.deduplicated };
  }

  /**
   * Pushes up to 1000 jobs to one queue in one transaction: all are stored,
   * or none (the error names the offending job as `jobs[i]`).
   */
  async batchPush<P = JsonValue>(
    queue: string,
    jobs: readonly BatchJob[],
    options: CallOptions = {},
  ): Promise<PushResult<P>[]> {
    const response = await this.raw.batchPushJobs(
      { queue, jobs: jobs.map((job) => pushRequest(queue, job.payload, job)) },
      callOptions(options),
    );
    return response.results.map((r) => ({ job: jobFromProto<P>(r.job!), deduplicated: r.deduplicated }));
  }

  /** Returns one job; `Code.NotFound` when the queue has no such job. */
  async get<P = JsonValue>(queue: string, id: string, options: CallOptions = {}): Promise<Job<P>> {
    const response = await this.raw.getJob({ queue, id }, callOptions(options));
    return jobFromProto<P>(response.job!);
  }

  /** Returns one page of a queue's jobs, oldest first. */
  async listPage<P = JsonValue>(queue: string, options: ListOptions = {}): Promise<JobPage<P>> {
    const response = await this.raw.listJobs(
      { queue, state: options.state, pageSize: options.pageSize, pageToken: options.pageToken },
      callOptions(options),
    );
    return { jobs: response.jobs.map((job) => jobFromProto<P>(job)), nextPageToken: response.nextPageToken };
  }

  /**
   * Lists a queue's jobs, oldest first, one page at a time: each page is
   * fetched when the loop asks for it.
   *
   * ```ts
   * for await (const page of client.list("email", { state: JobState.DEAD })) {
   *   for (const job of page) console.log(job.id, job.lastError);
   * }
   * ```
   */
  async *list<P = JsonValue>(queue: string, options: ListOptions = {}): AsyncGenerator<Job<P>[], void, undefined> {
    let pageToken = options.pageToken ?? "";
    do {
      const page = await this.listPage<P>(queue, { ...options, pageToken });
      if (page.jobs.length > 0) yield page.jobs;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * Cancels a job that has not finished and returns it, `CANCELED`. A running
   * job's worker learns it at its next heartbeat. A finished job is
   * `Code.FailedPrecondition`.
   */
  async cancel<P = JsonValue>(queue: string, id: string, options: CallOptions = {}): Promise<Job<P>> {
    const response = await this.raw.cancelJob({ queue, id }, callOptions(options));
    return jobFromProto<P>(response.job!);
  }

  /**
   * Brings a `DEAD` job back: it is `PENDING` again with its attempts reset.
   * Other states are `Code.FailedPrecondition`.
   */
  async retry<P = JsonValue>(queue: string, id: string, options: CallOptions = {}): Promise<Job<P>> {
    const response = await this.raw.retryJob({ queue, id }, callOptions(options));
    return jobFromProto<P>(response.job!);
  }

  /**
   * Retries dead jobs in bulk: `ids` (at most 1000), or every dead job of the
   * queue when `ids` is empty or omitted. Returns the ids now `PENDING`; jobs
   * that were not dead are skipped.
   */
  async retryDead(queue: string, ids: readonly string[] = [], options: CallOptions = {}): Promise<string[]> {
    const response = await this.raw.batchRetryJobs({ queue, ids: [...ids] }, callOptions(options));
    return response.retriedIds;
  }

  /** Every queue that holds jobs, by name, with per-state counts. */
  async queues(options: CallOptions = {}): Promise<QueueInfo[]> {
    const queues: QueueInfo[] = [];
    let pageToken = "";
    do {
      const response = await this.raw.listQueues({ pageSize: 1000, pageToken }, callOptions(options));
      queues.push(...response.queues.map(queueFromProto));
      pageToken = response.nextPageToken;
    } while (pageToken !== "");
    return queues;
  }

  /** The workers heard from in the last five minutes, most recent first. */
  async workers(options: CallOptions = {}): Promise<WorkerInfo[]> {
    const response = await this.raw.listWorkers({}, callOptions(options));
    return response.workers.map(workerFromProto);
  }
}

function pushRequest(queue: string, payload: unknown, options: PushOptions): PushJobRequest {
  return create(PushJobRequestSchema, {
    queue,
    payload: toValue(payload),
    scheduledAt: options.scheduledAt && timestampFromDate(options.scheduledAt),
    priority: options.priority ?? 0,
    maxAttempts: options.maxAttempts ?? 0,
    idempotencyKey: options.idempotencyKey ?? "",
    metadata: options.metadata ?? {},
    retryPolicy:
      options.retryPolicy &&
      create(RetryPolicySchema, {
        initialBackoff: durationFromMs(options.retryPolicy.initialBackoffMs),
        maxBackoff: durationFromMs(options.retryPolicy.maxBackoffMs),
      }),
  });
}

/** Only the call options: push's options also hold the job's fields. */
function callOptions(options: CallOptions): ConnectCallOptions {
  return { signal: options.signal, timeoutMs: options.timeoutMs, headers: options.headers };
}
