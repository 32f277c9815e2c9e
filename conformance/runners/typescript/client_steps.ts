// The client steps: each one call of `ChirpyClient`.

import type { BatchJob, ChirpyClient, JsonValue, PushOptions } from "@chirpy/client";
import { Args, Unsupported } from "./protocol.js";
import { jobShape, jobsShape, parseState, queueShape, workerShape } from "./shape.js";

/** A client step: its arguments to its result. */
export type ClientStep = (client: ChirpyClient, args: Args) => Promise<JsonValue>;

/** The arguments of a push besides `queue`: those of one job of a batch push. */
const JOB_ARGS = ["payload", "scheduled_at", "priority", "max_attempts", "idempotency_key", "metadata", "backoff"];

/** The options of a push (or of one job of a batch push) from its arguments. */
function pushOptions(args: Args): PushOptions {
  const backoff = args.object("backoff")?.allow("initial_ms", "max_ms");
  return {
    scheduledAt: args.date("scheduled_at"),
    priority: args.integer("priority"),
    maxAttempts: args.integer("max_attempts"),
    idempotencyKey: args.string("idempotency_key"),
    metadata: args.stringMap("metadata"),
    retryPolicy: backoff && {
      initialBackoffMs: backoff.integer("initial_ms") ?? 0,
      maxBackoffMs: backoff.integer("max_ms") ?? 0,
    },
  };
}

/** A missing payload is JSON `null`, as the other runners' JSON decoding makes it. */
function payload(args: Args): JsonValue {
  return args.value("payload") ?? null;
}

/** A missing queue or id is `""`, which the server refuses as it sees fit. */
function text(args: Args, key: string): string {
  return args.string(key) ?? "";
}

export const clientSteps: Record<string, ClientStep> = {
  async push(client, args) {
    args.allow("queue", ...JOB_ARGS);
    const { job } = await client.push(text(args, "queue"), payload(args), pushOptions(args));
    return jobShape(job);
  },

  async batch_push(client, args) {
    args.allow("queue", "jobs");
    const jobs: BatchJob[] = (args.objects("jobs") ?? []).map((job) => {
      job.allow(...JOB_ARGS);
      return { payload: payload(job), ...pushOptions(job) };
    });
    const results = await client.batchPush(text(args, "queue"), jobs);
    return { jobs: jobsShape(results.map((r) => r.job)) };
  },

  async get(client, args) {
    args.allow("queue", "id");
    return jobShape(await client.get(text(args, "queue"), text(args, "id")));
  },

  async list(client, args) {
    args.allow("queue", "state", "page_size", "page_token");
    const stateName = args.string("state");
    const state = stateName === undefined ? undefined : parseState(stateName);
    if (stateName !== undefined && state === undefined) {
      throw new Unsupported(`list: state: no state ${JSON.stringify(stateName)}`);
    }
    // One page: listPage, not the list() iterator, which follows every page.
    const page = await client.listPage(text(args, "queue"), {
      state,
      pageSize: args.integer("page_size"),
      pageToken: args.string("page_token"),
    });
    return { jobs: jobsShape(page.jobs), next_page_token: page.nextPageToken };
  },

  async cancel(client, args) {
    args.allow("queue", "id");
    return jobShape(await client.cancel(text(args, "queue"), text(args, "id")));
  },

  async retry(client, args) {
    args.allow("queue", "id");
    return jobShape(await client.retry(text(args, "queue"), text(args, "id")));
  },

  async retry_dead(client, args) {
    args.allow("queue", "ids");
    return { ids: await client.retryDead(text(args, "queue"), args.strings("ids") ?? []) };
  },

  async queues(client, args) {
    args.allow();
    return { queues: (await client.queues()).map(queueShape) };
  },

  async workers(client, args) {
    args.allow();
    return { workers: (await client.workers()).map(workerShape) };
  },
};
