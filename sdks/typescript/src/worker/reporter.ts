// Reporting outcomes: handlers queue theirs here, and whatever is queued is
// sent together, in at most two calls (BatchCompleteJobs, BatchFailJobs),
// each outcome fenced by its job's lease. While one send is in flight the
// next outcomes wait and go in the following batch, so a busy worker makes
// few calls and an idle one reports at once.

import { create } from "@bufbuild/protobuf";
import { durationFromMs, type Value } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  CompleteJobRequestSchema,
  FailJobRequestSchema,
  WorkerService,
  type JobOutcome,
  type LeasedJob,
} from "../gen/chirpy/v1/worker_service_pb.js";
import type { Logger } from "./logger.js";
import { withRetries } from "./pace.js";

/** Most outcomes in one batch call (the server's limit). */
const MAX_BATCH = 1000;

/** A lease the worker holds and has not reported. */
export interface HeldLease {
  readonly leased: LeasedJob;
  readonly queue: string;
  readonly id: string;
  /** Aborted when the server cancels the job or the lease is lost. */
  controller?: AbortController;
  /** Set when the server canceled the job or the lease was lost: report nothing. */
  dropped: boolean;
}

/** What became of an attempt. */
export type Outcome =
  | { kind: "succeeded"; result: Value }
  | { kind: "failed"; error: string; nonRetryable: boolean; retryAfterMs?: number };

interface Queued {
  lease: HeldLease;
  outcome: Outcome;
}

export class Reporter {
  private queue: Queued[] = [];
  private sending: Promise<void> | undefined;

  constructor(
    private readonly workers: Client<typeof WorkerService>,
    private readonly logger: Logger,
    /** Called once an outcome was sent (or given up on): the lease is done. */
    private readonly onSettled: (lease: HeldLease) => void,
  ) {}

  /** Queues an outcome; it is sent with the others queued by then. */
  add(lease: HeldLease, outcome: Outcome): void {
    this.queue.push({ lease, outcome });
    // Let the outcomes of handlers that finish in the same turn join in.
    this.sending ??= new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => this.sendAll());
  }

  /** Resolves once every queued outcome has been sent. */
  async idle(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async sendAll(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.send(batch.filter((q) => !q.lease.dropped));
        for (const q of batch) this.onSettled(q.lease);
      }
    } finally {
      this.sending = undefined;
    }
  }

  private async send(batch: Queued[]): Promise<void> {
    const completions = batch.filter((q) => q.outcome.kind === "succeeded");
    const failures = batch.filter((q) => q.outcome.kind === "failed");
    const calls: Promise<void>[] = [];
    if (completions.length > 0) {
      const jobs = completions.map(({ lease, outcome }) =>
        create(CompleteJobRequestSchema, {
          queue: lease.queue,
          id: lease.id,
          leaseId: lease.leased.leaseId,
          result: outcome.kind === "succeeded" ? outcome.result : undefined,
        }),
      );
      calls.push(this.call("completion", completions, () => this.workers.batchCompleteJobs({ jobs }, { timeoutMs: 15_000 })));
    }
    if (failures.length > 0) {
      const jobs = failures.map(({ lease, outcome }) => {
        const failed = outcome as Extract<Outcome, { kind: "failed" }>;
        return create(FailJobRequestSchema, {
          queue: lease.queue,
          id: lease.id,
          leaseId: lease.leased.leaseId,
          error: failed.error,
          nonRetryable: failed.nonRetryable,
          retryAfter: failed.retryAfterMs === undefined ? undefined : durationFromMs(Math.max(0, failed.retryAfterMs)),
        });
      });
      calls.push(this.call("failure", failures, () => this.workers.batchFailJobs({ jobs }, { timeoutMs: 15_000 })));
    }
    await Promise.all(calls);
  }

  /**
   * Makes one batch call, retrying for about ten seconds while the server is
   * unreachable; after that the leases expire and the jobs run again, which
   * is what at-least-once delivery promises.
   */
  private async call(
    kind: string,
    batch: Queued[],
    attempt: () => Promise<{ results: JobOutcome[] }>,
  ): Promise<void> {
    try {
      const { results } = await withRetries(7, attempt, (err, ms) =>
        this.logger.warn(`chirpy: cannot report ${batch.length} ${kind}(s), retrying in ${ms} ms`, err),
      );
      results.forEach((result, i) => {
        if (result.outcome.case === "error") {
          // Typically the lease was lost (the job expired and ran elsewhere)
          // or the job was canceled meanwhile.
          this.logger.info(`chirpy: ${kind} of job ${batch[i]?.lease.id} not recorded: ${result.outcome.value.message}`);
        }
      });
    } catch (err) {
      this.logger.error(`chirpy: ${batch.length} ${kind}(s) lost; the jobs will run again when their leases expire`, err);
    }
  }
}
