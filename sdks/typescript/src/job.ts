// The SDK's view of Chirpy's resources: the generated messages with JSON
// payloads and results, `Date`s for timestamps and numbers for counts.
// The generated messages themselves are exported from `@chirpy/client/v1`.

import { durationMs, timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { JobState } from "./gen/chirpy/v1/job_pb.js";
import type * as pb from "./gen/chirpy/v1/job_pb.js";
import { fromValue, type JsonValue } from "./json.js";

export { JobState };

/** A job as the server stores it. `P` is the payload's type (not checked). */
export interface Job<P = JsonValue> {
  /** Server-assigned ULID. */
  id: string;
  queue: string;
  /** What was pushed, as JSON. */
  payload: P;
  state: JobState;
  /** Higher runs first within a queue. */
  priority: number;
  /** Attempts started, including a running one. */
  attempts: number;
  maxAttempts: number;
  /** When the job (or its next attempt) may run. */
  scheduledAt?: Date;
  createdAt?: Date;
  /** When the latest attempt was handed to a worker. */
  startedAt?: Date;
  /** When the job reached a final state. */
  finishedAt?: Date;
  /** The error of the latest failed attempt, or `""`. */
  lastError: string;
  /** What the worker returned, once `SUCCEEDED`; `null` otherwise. */
  result: JsonValue;
  metadata: Record<string, string>;
  /** `""` when the job was pushed without one. */
  idempotencyKey: string;
  /** The current lease, while `RUNNING` on a Chirpy worker. */
  lease?: { workerId: string; expiresAt?: Date };
  /** The job's own retry policy; unset means the server's default. */
  retryPolicy?: RetryPolicy;
}

/** Exponential backoff between attempts, in milliseconds. */
export interface RetryPolicy {
  /** The wait before the first retry; at least 1000. */
  initialBackoffMs: number;
  /** The longest wait between attempts. */
  maxBackoffMs: number;
}

/** A queue and how many of its jobs are in each state. */
export interface QueueInfo {
  name: string;
  pending: number;
  scheduled: number;
  running: number;
  succeeded: number;
  dead: number;
  canceled: number;
}

/** A worker the server heard from recently. */
export interface WorkerInfo {
  id: string;
  queues: string[];
  /** `chirpy` for remote workers, the Apalis storage name otherwise. */
  kind: string;
  startedAt?: Date;
  lastHeartbeatAt?: Date;
  runningJobs: number;
}

function date(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

function ms(d: Duration | undefined): number {
  return d === undefined ? 0 : durationMs(d);
}

/** The SDK's view of a generated `chirpy.v1.Job`. */
export function jobFromProto<P = JsonValue>(job: pb.Job): Job<P> {
  return {
    id: job.id,
    queue: job.queue,
    payload: fromValue(job.payload) as P,
    state: job.state,
    priority: job.priority,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    scheduledAt: date(job.scheduledAt),
    createdAt: date(job.createdAt),
    startedAt: date(job.startedAt),
    finishedAt: date(job.finishedAt),
    lastError: job.lastError,
    result: fromValue(job.result),
    metadata: { ...job.metadata },
    idempotencyKey: job.idempotencyKey,
    lease: job.lease && { workerId: job.lease.workerId, expiresAt: date(job.lease.expiresAt) },
    retryPolicy: job.retryPolicy && {
      initialBackoffMs: ms(job.retryPolicy.initialBackoff),
      maxBackoffMs: ms(job.retryPolicy.maxBackoff),
    },
  };
}

export function queueFromProto(queue: pb.Queue): QueueInfo {
  return {
    name: queue.name,
    pending: Number(queue.pending),
    scheduled: Number(queue.scheduled),
    running: Number(queue.running),
    succeeded: Number(queue.succeeded),
    dead: Number(queue.dead),
    canceled: Number(queue.canceled),
  };
}

export function workerFromProto(worker: pb.Worker): WorkerInfo {
  return {
    id: worker.id,
    queues: [...worker.queues],
    kind: worker.kind,
    startedAt: date(worker.startedAt),
    lastHeartbeatAt: date(worker.lastHeartbeatAt),
    runningJobs: Number(worker.runningJobs),
  };
}

/** The name of a state without its prefix, such as `"PENDING"`. */
export function stateName(state: JobState): string {
  return JobState[state] ?? String(state);
}
