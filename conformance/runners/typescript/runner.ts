// The TypeScript SDK's conformance runner (conformance/README.md, "The
// runner protocol"): reads one JSON request a line from stdin, runs it
// through `@chirpy/client`'s public API, and writes one JSON response a line
// to stdout, in order, one request at a time; workers run in the background.
// Logs go to stderr. At the end of stdin it stops its workers gracefully (for
// at most 5 s, then gives up) and exits 0.
//
//   CHIRPY_URL  the server, such as http://127.0.0.1:7011

import { createInterface } from "node:readline";
import { ChirpyClient, createNodeTransport, type JsonValue } from "@chirpy/client";
import { clientSteps } from "./client_steps.js";
import { Args, isObject, stepError, Unsupported, type Request, type Response } from "./protocol.js";
import { Workers } from "./workers.js";

/** How long the runner waits for its workers to stop at the end of stdin (the driver waits 10 s, then kills it). */
const EOF_STOP_PATIENCE_MS = 5000;

function log(message: string, ...details: unknown[]): void {
  console.error(`[typescript-runner] ${message}`, ...details);
}

function write(response: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(`${JSON.stringify(response)}\n`, (err) => (err ? reject(err) : resolve()));
  });
}

/** A line of stdin as a request; a line that is not one is answered `unsupported`. */
function parse(line: string): Request | Response {
  let value: JsonValue;
  try {
    value = JSON.parse(line) as JsonValue;
  } catch (err) {
    return { id: null, unsupported: `not a request: ${String(err)}` };
  }
  if (!isObject(value)) return { id: null, unsupported: "not a request: not a JSON object" };
  const id = value["id"] ?? null;
  const kind = value["kind"];
  const args = value["args"] ?? {};
  if (typeof kind !== "string" || !isObject(args)) {
    return { id, unsupported: "not a request: want {id, kind: string, args: object}" };
  }
  return { id, kind, args };
}

async function main(): Promise<void> {
  const url = process.env["CHIRPY_URL"];
  if (!url) {
    log("CHIRPY_URL is not set");
    process.exit(2);
  }
  const transport = createNodeTransport(url);
  const client = new ChirpyClient(transport);
  const workers = new Workers(transport, client);

  const steps: Record<string, (args: Args) => Promise<JsonValue>> = {
    start_worker: (args) => workers.start(args),
    stop_worker: (args) => workers.stop(args),
    events: async (args) => workers.list(args),
  };
  for (const [kind, step] of Object.entries(clientSteps)) steps[kind] = (args) => step(client, args);

  async function run(request: Request): Promise<Response> {
    const step = Object.prototype.hasOwnProperty.call(steps, request.kind) ? steps[request.kind] : undefined;
    if (!step) return { id: request.id, unsupported: `unknown kind ${request.kind}` };
    try {
      return { id: request.id, result: await step(new Args(request.args, request.kind)) };
    } catch (err) {
      if (err instanceof Unsupported) return { id: request.id, unsupported: err.message };
      return { id: request.id, error: stepError(err) };
    }
  }

  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    const request = parse(line);
    await write("kind" in request ? await run(request) : request);
  }

  log("end of input: stopping workers");
  const patience = new Promise<"impatient">((resolve) => setTimeout(resolve, EOF_STOP_PATIENCE_MS, "impatient").unref());
  if ((await Promise.race([workers.stopAll(), patience])) === "impatient") {
    log(`workers still stopping after ${EOF_STOP_PATIENCE_MS} ms; exiting anyway`);
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  log("fatal:", err);
  process.exit(1);
});
