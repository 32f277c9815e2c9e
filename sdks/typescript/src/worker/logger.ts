// Where the worker reports what it cannot return to a caller: failed
// heartbeats, refused outcomes, retries.

/** A sink for the worker's messages; `console` fits. */
export interface Logger {
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

/** The default: warnings and errors to the console, nothing else. */
export const consoleLogger: Logger = {
  info() {},
  warn: (message, ...details) => console.warn(message, ...details),
  error: (message, ...details) => console.error(message, ...details),
};
