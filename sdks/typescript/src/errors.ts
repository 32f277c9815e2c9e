// What a worker's handler throws to steer the retry decision. Any other
// thrown value is a failed attempt, retried after the job's backoff.

/**
 * Thrown by a handler: the job goes to the failure queue (`DEAD`) at once,
 * whatever attempts it has left.
 */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/**
 * Thrown by a handler: a failed attempt, retried after `retryAfterMs`
 * instead of the job's backoff (when it has attempts left).
 */
export class RetryAfterError extends Error {
  /** The wait before the next attempt, in milliseconds. */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number, message = `retry in ${retryAfterMs} ms`, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RetryAfterError";
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The `reason` of a handler's `AbortSignal` when the server canceled the job
 * or gave its lease to another worker. Its outcome is not reported.
 */
export class JobStoppedError extends Error {
  /** `canceled` (CancelJob) or `lost` (the lease expired). */
  readonly why: "canceled" | "lost";

  constructor(why: "canceled" | "lost") {
    super(why === "canceled" ? "the job was canceled" : "the job's lease was lost");
    this.name = "JobStoppedError";
    this.why = why;
  }
}
