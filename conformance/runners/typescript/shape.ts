// The canonical shapes of conformance/README.md ("The Job object" and the
// results of `queues` and `workers`), from the SDK's types.

import { JobState, type Job, type JsonObject, type JsonValue, type QueueInfo, type WorkerInfo } from "@chirpy/client";

function time(date: Date | undefined): string | null {
  return date === undefined ? null : date.toISOString();
}

/** `PENDING`, `RUNNING`, ...: the SDK's `JobState` names are the proto's without `JOB_STATE_`. */
export function stateName(state: JobState): string {
  return JobState[state] ?? `UNKNOWN_STATE_${state}`;
}

/** A state name of the protocol (`DEAD`; `JOB_STATE_DEAD` is accepted too) as the SDK's `JobState`. */
export function parseState(name: string): JobState | undefined {
  const key = name.toUpperCase().replace(/^JOB_STATE_/, "");
  if (!Object.prototype.hasOwnProperty.call(JobState, key)) return undefined;
  const value: unknown = (JobState as unknown as Record<string, unknown>)[key];
  return typeof value === "number" ? (value as JobState) : undefined;
}

export function jobShape(job: Job): JsonObject {
  return {
    id: job.id,
    queue: job.queue,
    state: stateName(job.state),
    payload: job.payload,
    result: job.result,
    priority: job.priority,
    attempts: job.attempts,
    max_attempts: job.maxAttempts,
    idempotency_key: job.idempotencyKey,
    last_error: job.lastError,
    metadata: { ...job.metadata },
    scheduled_at: time(job.scheduledAt),
    created_at: time(job.createdAt),
    started_at: time(job.startedAt),
    finished_at: time(job.finishedAt),
    worker_id: job.lease?.workerId || null,
  };
}

export function jobsShape(jobs: readonly Job[]): JsonValue {
  return jobs.map(jobShape);
}

export function queueShape(queue: QueueInfo): JsonObject {
  return {
    name: queue.name,
    pending: queue.pending,
    scheduled: queue.scheduled,
    running: queue.running,
    succeeded: queue.succeeded,
    dead: queue.dead,
    canceled: queue.canceled,
  };
}

export function workerShape(worker: WorkerInfo): JsonObject {
  return { id: worker.id, queues: [...worker.queues], running_jobs: worker.runningJobs };
}
