// The public API that both entry points (`./node` and `./web`) share: the
// client, the worker and their types, none of which depends on a transport.

export { Code, ConnectError, type Transport } from "@connectrpc/connect";
export {
  ChirpyClient,
  type BatchJob,
  type CallOptions,
  type JobPage,
  type ListOptions,
  type PushOptions,
  type PushResult,
} from "./client.js";
export { JobStoppedError, NonRetryableError, RetryAfterError } from "./errors.js";
export { JobState, type Job, type QueueInfo, type RetryPolicy, type WorkerInfo } from "./job.js";
export type { JsonObject, JsonValue } from "./json.js";
export type { Logger } from "./worker/logger.js";
export { Worker, type Handler, type JobContext, type WorkerOptions } from "./worker/worker.js";
