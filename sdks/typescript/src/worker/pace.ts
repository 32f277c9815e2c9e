// Timing for the worker's loops: which errors are worth retrying, backoff
// with jitter, and a wake-up that a loop can wait on with a timeout.

import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Errors that retrying cannot fix: a malformed request (bad queue name or
 * worker id), a server without WorkerService, missing credentials.
 */
export function isFatal(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return (
    code === Code.InvalidArgument ||
    code === Code.Unimplemented ||
    code === Code.Unauthenticated ||
    code === Code.PermissionDenied
  );
}

/** Exponential backoff from `firstMs`, doubling up to `maxMs`, with ±20% jitter. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly firstMs = 200,
    private readonly maxMs = 5000,
  ) {
    this.nextMs = firstMs;
  }

  /** The wait before the next try. */
  next(): number {
    const ms = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.maxMs);
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.nextMs = this.firstMs;
  }
}

/**
 * Something a loop waits for: `wait(ms)` resolves at the next `notify()`, or
 * after `ms`, whichever comes first.
 */
export class Wakeup {
  private waiters = new Set<() => void>();

  wait(ms = Number.POSITIVE_INFINITY): Promise<void> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      if (Number.isFinite(ms)) timer = setTimeout(done, ms);
    });
  }

  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Calls `attempt` until it succeeds, a fatal error, or `tries` attempts. */
export async function withRetries<T>(
  tries: number,
  attempt: () => Promise<T>,
  onRetry: (err: unknown, inMs: number) => void,
  stopped: () => boolean = () => false,
): Promise<T> {
  const backoff = new Backoff(100, 5000);
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      if (tried >= tries || isFatal(err) || stopped()) throw err;
      const ms = backoff.next();
      onRetry(err, ms);
      await new Promise((resolve) => setTimeout(resolve, ms));
    }
  }
}
