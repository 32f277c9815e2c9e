// ChirpyClient against a live server, over every transport the SDK offers:
// gRPC (HTTP/2), gRPC-web over HTTP/1.1 and HTTP/2 from Node, and the
// browser transport (connect-web on fetch), which Node 20 can run too.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient, type Transport } from "@connectrpc/connect";
import * as root from "@chirpy/client";
import {
  ChirpyClient,
  Code,
  ConnectError,
  createNodeTransport,
  JobState,
  type Job,
} from "@chirpy/client/node";
import { createBrowserTransport } from "@chirpy/client/web";
import { WorkerService } from "@chirpy/client/v1";
import { startServer, type ChirpyServer } from "../support/server.js";

let server: ChirpyServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const transports: Array<[string, (url: string) => Transport]> = [
  ["grpc", (url) => createNodeTransport(url)],
  ["grpc-web-h1", (url) => createNodeTransport(url, { protocol: "grpc-web" })],
  ["grpc-web-h2", (url) => createNodeTransport(url, { protocol: "grpc-web", httpVersion: "2" })],
  ["fetch", (url) => createBrowserTransport(url)],
];

test("the package root resolves to the Node entry point under Node", () => {
  assert.equal(typeof (root as Record<string, unknown>).createNodeTransport, "function");
  assert.equal(root.ChirpyClient, ChirpyClient);
});

for (const [name, transport] of transports) {
  describe(`ChirpyClient over ${name}`, () => {
    let client: ChirpyClient;
    let t: Transport;
    /** A queue of this transport's own, so the suites do not see each other's jobs. */
    const q = (what: string) => `${name}.${what}`;

    before(() => {
      t = transport(server.url);
      client = new ChirpyClient(t);
    });

    test("push and get round-trip the payload and options", async () => {
      const payload = { to: "user@example.com", n: 3, ratio: 0.5, tags: ["a", "b"], nested: { ok: true, none: null } };
      const { job, deduplicated } = await client.push(q("email"), payload, {
        priority: 7,
        maxAttempts: 3,
        metadata: { tenant: "acme" },
        retryPolicy: { initialBackoffMs: 2000, maxBackoffMs: 60_000 },
      });
      assert.equal(deduplicated, false);
      assert.match(job.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(job.queue, q("email"));
      assert.equal(job.state, JobState.PENDING);
      assert.deepEqual(job.payload, payload);
      assert.equal(job.priority, 7);
      assert.equal(job.maxAttempts, 3);
      assert.equal(job.attempts, 0);
      assert.deepEqual(job.metadata, { tenant: "acme" });
      assert.deepEqual(job.retryPolicy, { initialBackoffMs: 2000, maxBackoffMs: 60_000 });
      assert.ok(job.createdAt instanceof Date);
      assert.equal(job.result, null);

      const got = await client.get(q("email"), job.id);
      assert.deepEqual(got, job);
    });

    test("payloads can be any JSON value; Dates become strings", async () => {
      for (const payload of [null, 42, "text", [1, [2]], true]) {
        const { job } = await client.push(q("scalars"), payload);
        assert.deepEqual((await client.get(q("scalars"), job.id)).payload, payload);
      }
      const when = new Date("2026-07-01T09:00:00Z");
      const { job } = await client.push(q("scalars"), { when });
      assert.deepEqual(job.payload, { when: "2026-07-01T09:00:00.000Z" });
      await assert.rejects(client.push(q("scalars"), undefined), TypeError);
      await assert.rejects(client.push(q("scalars"), { big: 1n }), TypeError);
    });

    test("a future scheduledAt makes the job SCHEDULED, not before its time", async () => {
      const at = new Date(Date.now() + 3_600_000);
      const { job } = await client.push(q("later"), {}, { scheduledAt: at });
      assert.equal(job.state, JobState.SCHEDULED);
      assert.ok(job.scheduledAt!.getTime() >= at.getTime() - 1, `${job.scheduledAt?.toISOString()} < ${at.toISOString()}`);
    });

    test("an idempotency key returns the existing job, also within a batch", async () => {
      const first = await client.push(q("idem"), { n: 1 }, { idempotencyKey: "welcome-42" });
      const again = await client.push(q("idem"), { n: 2 }, { idempotencyKey: "welcome-42" });
      assert.equal(again.deduplicated, true);
      assert.equal(again.job.id, first.job.id);
      assert.deepEqual(again.job.payload, { n: 1 });

      const batch = await client.batchPush(q("idem"), [
        { payload: { n: 3 }, idempotencyKey: "welcome-42" },
        { payload: { n: 4 }, idempotencyKey: "k-new" },
        { payload: { n: 5 }, idempotencyKey: "k-new" },
      ]);
      assert.deepEqual(
        batch.map((r) => r.deduplicated),
        [true, false, true],
      );
      assert.equal(batch[0]!.job.id, first.job.id);
      assert.equal(batch[2]!.job.id, batch[1]!.job.id);
      const all = await collect(client.list(q("idem")));
      assert.equal(all.length, 2);
    });

    test("batchPush stores all jobs in order, or none", async () => {
      const results = await client.batchPush(q("batch"), [
        { payload: 1 },
        { payload: 2, priority: 5 },
        { payload: 3, metadata: { k: "v" } },
      ]);
      assert.deepEqual(
        results.map((r) => r.job.payload),
        [1, 2, 3],
      );
      assert.equal(results[1]!.job.priority, 5);

      await assert.rejects(
        client.batchPush(q("batch"), [{ payload: 4 }, { payload: 5, maxAttempts: 5000 }]),
        (err: unknown) => isCode(err, Code.InvalidArgument) && /max_attempts/.test((err as ConnectError).rawMessage),
      );
      assert.equal((await collect(client.list(q("batch")))).length, 3);
    });

    test("list pages through a queue oldest first, and filters by state", async () => {
      const queue = q("pages");
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await client.push(queue, { i })).job.id);
      await client.cancel(queue, ids[2]!);

      const pages: Job[][] = [];
      for await (const page of client.list(queue, { pageSize: 3 })) pages.push(page);
      assert.deepEqual(
        pages.map((p) => p.length),
        [3, 3, 1],
      );
      assert.deepEqual(
        pages.flat().map((j) => j.id),
        ids,
      );

      const first = await client.listPage(queue, { pageSize: 4 });
      assert.equal(first.jobs.length, 4);
      assert.notEqual(first.nextPageToken, "");
      const rest = await client.listPage(queue, { pageSize: 4, pageToken: first.nextPageToken });
      assert.deepEqual(
        rest.jobs.map((j) => j.id),
        ids.slice(4),
      );
      assert.equal(rest.nextPageToken, "");

      const canceled = await collect(client.list(queue, { state: JobState.CANCELED }));
      assert.deepEqual(
        canceled.map((j) => j.id),
        [ids[2]],
      );
      const pending = await collect(client.list(queue, { state: JobState.PENDING, pageSize: 2 }));
      assert.equal(pending.length, 6);
      assert.deepEqual(await collect(client.list(q("empty-queue"))), []);
    });

    test("errors are ConnectErrors with the server's code", async () => {
      await assert.rejects(client.get(q("email"), "01M91FH8D52GPEXPHTVKAGKGAC"), (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, Code.NotFound);
        assert.match(err.rawMessage, /not found/);
        return true;
      });
      await assert.rejects(client.push("bad queue!", {}), (err: unknown) => {
        assert.ok(isCode(err, Code.InvalidArgument));
        assert.match((err as ConnectError).rawMessage, /queue/);
        return true;
      });
      await assert.rejects(client.get(q("email"), "not-a-ulid"), (err: unknown) => isCode(err, Code.InvalidArgument));
      await assert.rejects(client.push(q("email"), {}, { metadata: { "chirpy.reserved": "x" } }), (err: unknown) =>
        isCode(err, Code.InvalidArgument),
      );
      const aborted = new AbortController();
      aborted.abort();
      await assert.rejects(client.queues({ signal: aborted.signal }), (err: unknown) => isCode(err, Code.Canceled));
    });

    test("cancel a pending job; a finished one is FAILED_PRECONDITION", async () => {
      const { job } = await client.push(q("cancel"), {});
      const canceled = await client.cancel(q("cancel"), job.id);
      assert.equal(canceled.state, JobState.CANCELED);
      assert.ok(canceled.finishedAt instanceof Date);
      await assert.rejects(client.cancel(q("cancel"), job.id), (err: unknown) =>
        isCode(err, Code.FailedPrecondition),
      );
      await assert.rejects(client.retry(q("cancel"), job.id), (err: unknown) => isCode(err, Code.FailedPrecondition));
    });

    test("retry and retryDead bring dead jobs back", async () => {
      const queue = q("dead");
      const pushed = await client.batchPush(queue, [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
      await killAll(t, queue, 3);
      const dead = await collect(client.list(queue, { state: JobState.DEAD }));
      assert.equal(dead.length, 3);
      assert.equal(dead[0]!.lastError, "poison");

      const one = await client.retry(queue, pushed[0]!.job.id);
      assert.equal(one.state, JobState.PENDING);
      assert.equal(one.attempts, 0);

      const ids = await client.retryDead(queue, [pushed[1]!.job.id, pushed[0]!.job.id]);
      assert.deepEqual(ids, [pushed[1]!.job.id]);
      assert.deepEqual(await client.retryDead(queue), [pushed[2]!.job.id]);
      assert.deepEqual(await client.retryDead(queue), []);
    });

    test("queues counts jobs per state; workers lists registered workers", async () => {
      const queue = q("counts");
      await client.batchPush(queue, [{ payload: 1 }, { payload: 2 }]);
      const { job } = await client.push(queue, {}, { scheduledAt: new Date(Date.now() + 3_600_000) });
      await client.cancel(queue, job.id);
      await client.push(queue, {}, { scheduledAt: new Date(Date.now() + 3_600_000) });
      const info = (await client.queues()).find((x) => x.name === queue);
      assert.deepEqual(info, { name: queue, pending: 2, scheduled: 1, running: 0, succeeded: 0, dead: 0, canceled: 1 });

      const workers = createClient(WorkerService, t);
      await workers.heartbeat({ workerId: `${name}-probe`, queues: [queue] });
      const listed = (await client.workers()).find((w) => w.id === `${name}-probe`);
      assert.ok(listed, "the worker is listed");
      assert.deepEqual(listed.queues, [queue]);
      assert.equal(listed.kind, "chirpy");
      assert.ok(listed.lastHeartbeatAt instanceof Date);
    });
  });
}

async function collect<T>(pages: AsyncIterable<T[]>): Promise<T[]> {
  const all: T[] = [];
  for await (const page of pages) all.push(...page);
  return all;
}

function isCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

/** Leases `count` jobs of `queue` and fails them as non-retryable, with the raw worker protocol. */
async function killAll(transport: Transport, queue: string, count: number): Promise<void> {
  const workers = createClient(WorkerService, transport);
  const { leases } = await workers.leaseJobs({ workerId: "killer", queues: [queue], maxJobs: count });
  assert.equal(leases.length, count);
  const { results } = await workers.batchFailJobs({
    jobs: leases.map((l) => ({ queue, id: l.job!.id, leaseId: l.leaseId, error: "poison", nonRetryable: true })),
  });
  for (const r of results) assert.equal(r.outcome.case, "job");
}
