// The README's examples, type-checked and run: each `ts node` block becomes
// a module in dist/test/readme (inside the package, so `@chirpy/client/*`
// resolves through the package's own exports), is type-checked with tsc's
// API, stripped of types by esbuild, and run by Node against a live server.
// The `ts browser` block is type-checked here and run by the browser test.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { transform } from "esbuild";
import { ChirpyClient, createNodeTransport, JobState } from "@chirpy/client/node";
import { readmeExamples } from "../support/readme.js";
import { packageDir, startServer, type ChirpyServer } from "../support/server.js";
import { typecheck } from "../support/typecheck.js";
import { eventually } from "../support/wait.js";

const dir = join(packageDir, "dist/test/readme");

let server: ChirpyServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the README has node, worker and browser examples", () => {
  const examples = readmeExamples();
  assert.ok(examples.some((e) => e.runtime === "node" && !e.worker));
  assert.ok(examples.some((e) => e.worker));
  assert.ok(examples.some((e) => e.runtime === "browser"));
});

test("the README's examples type-check", () => {
  mkdirSync(dir, { recursive: true });
  const files = { node: [] as string[], browser: [] as string[] };
  for (const example of readmeExamples()) {
    const file = join(dir, `example-${example.index}.ts`);
    writeFileSync(file, example.code);
    files[example.runtime].push(file);
  }
  assert.equal(typecheck(files.node, "node"), "");
  assert.equal(typecheck(files.browser, "browser"), "");
});

test("the README's Node examples run against the server", async () => {
  mkdirSync(dir, { recursive: true });
  const client = new ChirpyClient(createNodeTransport(server.url));
  for (const example of readmeExamples(server.url).filter((e) => e.runtime === "node")) {
    const { code } = await transform(example.code, { loader: "ts", format: "esm", target: "node20" });
    const file = join(dir, `example-${example.index}.mjs`);
    writeFileSync(file, code);
    const child = spawn(process.execPath, [file], { cwd: packageDir, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const where = `README example ${example.index} (line ${example.line})`;
    try {
      if (example.worker) {
        // It works the "email" jobs the first example pushed, until told to stop.
        await eventually(
          `${where} to drain the email queue`,
          async () => {
            const email = (await client.queues()).find((q) => q.name === "email");
            return email && email.pending === 0 && email.running === 0 && email.succeeded >= 3;
          },
          20_000,
        );
        const done = await client.listPage("email", { state: JobState.SUCCEEDED });
        assert.deepEqual(done.jobs[0]?.result, { sent: true });
        child.kill("SIGTERM");
      }
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 30_000).unref())]);
      assert.equal(code, 0, `${where} exited with ${code}:\n${output}`);
    } finally {
      child.kill("SIGKILL");
    }
    if (example.index === 1) assert.match(output, /^[0-9A-Z]{26} PENDING$/m, output);
  }
});
