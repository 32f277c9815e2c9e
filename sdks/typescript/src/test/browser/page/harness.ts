// The browser test's page script, bundled by esbuild (not built by tsc: it
// needs the DOM; the test type-checks it on its own). It calls the Chirpy
// server named by `?server=` from this page's origin, another one, and
// reports what it saw as JSON in #result, with the title PASS or FAIL.

import { ChirpyClient, Code, ConnectError, createBrowserTransport, JobState, Worker } from "@chirpy/client";

const server = new URL(location.href).searchParams.get("server") ?? "";
const report: Record<string, unknown> = { origin: location.origin, server };

function describe(err: unknown): string {
  return err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : String(err);
}

async function main(): Promise<void> {
  const client = new ChirpyClient(createBrowserTransport(server));

  const { job } = await client.push("browser", { from: "chromium", n: 21 }, { metadata: { page: "harness" } });
  const got = await client.get("browser", job.id);
  report.pushed = { id: job.id, state: JobState[got.state], payload: got.payload, metadata: got.metadata };

  try {
    await client.get("browser", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    report.notFound = "no error";
  } catch (err) {
    report.notFound = describe(err);
  }
  try {
    await client.push("not a queue", {});
    report.invalid = "no error";
  } catch (err) {
    report.invalid = describe(err);
  }

  // The worker runs here too: it needs nothing but unary gRPC-web calls.
  const worker = new Worker<{ n: number }>(createBrowserTransport(server), {
    queues: "browser",
    name: "chromium",
    handler: async (leased) => ({ doubled: leased.payload.n * 2 }),
  });
  const run = worker.run();
  const deadline = Date.now() + 15_000;
  let done = await client.get("browser", job.id);
  while (done.state !== JobState.SUCCEEDED && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    done = await client.get("browser", job.id);
  }
  await worker.stop();
  await run;
  report.worked = { state: JobState[done.state], result: done.result, workerId: worker.id };

  await client.batchPush("browser", [{ payload: 1 }, { payload: 2 }]);
  const pages: number[] = [];
  for await (const page of client.list("browser", { pageSize: 2 })) pages.push(page.length);
  report.pages = pages;
}

function finish(verdict: "PASS" | "FAIL"): void {
  document.querySelector("#result")!.textContent = JSON.stringify(report);
  document.title = verdict;
}

main().then(
  () => finish("PASS"),
  (err: unknown) => {
    report.error = describe(err);
    finish("FAIL");
  },
);
