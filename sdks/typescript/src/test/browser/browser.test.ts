// The SDK in a real browser: headless Chromium (Debian's, driven by
// playwright-core) loads pages from a static server on one origin, and they
// call the Chirpy server, on another origin, over gRPC-web (so through its
// CORS). The pages' scripts are bundled by esbuild from `@chirpy/client`,
// whose `browser` export condition selects the web build.
//
// CHROMIUM names the browser (default /usr/bin/chromium).

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { readmeExamples } from "../support/readme.js";
import { packageDir, startServer, type ChirpyServer } from "../support/server.js";
import { typecheck } from "../support/typecheck.js";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const pageDir = join(packageDir, "src/test/browser/page");

let chirpy: ChirpyServer;
let site: Server;
let siteUrl: string;
let browser: Browser;
/** Path → [content type, body], served by the static site. */
const files = new Map<string, [string, string]>();

/** Bundles one module for the browser, resolving `@chirpy/client` through the package's exports. */
async function bundle(entry: { file: string } | { code: string }): Promise<string> {
  const input =
    "file" in entry
      ? { entryPoints: [entry.file] }
      : { stdin: { contents: entry.code, loader: "ts" as const, resolveDir: join(packageDir, "dist/test") } };
  const result = await build({
    ...input,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

function html(script: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>loading</title></head>
<body>${body}<script type="module" src="${script}"></script></body></html>`;
}

before(async () => {
  chirpy = await startServer();
  const readme = readmeExamples(chirpy.url).find((e) => e.runtime === "browser");
  assert.ok(readme, "the README has a browser example");
  files.set("/harness.html", ["text/html", html("/harness.js", `<pre id="result"></pre>`)]);
  files.set("/harness.js", ["text/javascript", await bundle({ file: join(pageDir, "harness.ts") })]);
  files.set("/readme.html", ["text/html", html("/readme.js", `<p id="status"></p>`)]);
  files.set("/readme.js", ["text/javascript", await bundle({ code: readme.code })]);

  site = createServer((req, res) => {
    const file = files.get(new URL(req.url ?? "/", "http://x").pathname);
    res.writeHead(file ? 200 : 404, { "content-type": file?.[0] ?? "text/plain" });
    res.end(file?.[1] ?? "not found");
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (site ? site.close(resolve) : resolve(undefined)));
  await chirpy?.stop();
});

/** Opens `path` and collects its console output and uncaught errors. */
async function open(path: string): Promise<{ page: Page; console: string[] }> {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on("console", (message) => console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (err) => console.push(`pageerror: ${err.message}`));
  await page.goto(`${siteUrl}${path}`);
  return { page, console };
}

test("the page script type-checks against the browser build", () => {
  assert.equal(typecheck([join(pageDir, "harness.ts")], "browser"), "");
});

test("a page on another origin pushes, reads back, works and lists jobs over gRPC-web", async () => {
  assert.notEqual(new URL(siteUrl).origin, new URL(chirpy.url).origin);
  assert.ok(!files.get("/harness.js")![1].includes("node:http2"), "the browser build bundles nothing of Node");
  const { page, console } = await open(`/harness.html?server=${encodeURIComponent(chirpy.url)}`);
  await page.waitForFunction(`["PASS", "FAIL"].includes(document.title)`, null, { timeout: 30_000 });
  const report = JSON.parse((await page.textContent("#result")) ?? "{}");
  assert.equal(await page.title(), "PASS", `${JSON.stringify(report, null, 2)}\n${console.join("\n")}`);

  assert.equal(report.origin, siteUrl);
  assert.equal(report.pushed.state, "PENDING");
  assert.deepEqual(report.pushed.payload, { from: "chromium", n: 21 });
  assert.deepEqual(report.pushed.metadata, { page: "harness" });
  assert.match(report.notFound, /^NotFound: .*not found/);
  assert.match(report.invalid, /^InvalidArgument: queue/);
  assert.equal(report.worked.state, "SUCCEEDED");
  assert.deepEqual(report.worked.result, { doubled: 42 });
  assert.match(report.worked.workerId, /^chromium\./);
  assert.deepEqual(report.pages, [2, 1]);
  await page.close();
});

test("the README's browser example runs in Chromium", async () => {
  const { page, console } = await open("/readme.html");
  await page.waitForFunction(`document.querySelector("#status").textContent !== ""`, null, { timeout: 30_000 });
  assert.match((await page.textContent("#status")) ?? "", /^pushed [0-9A-Z]{26}$/, console.join("\n"));
  // The NotFound branch logs after the status is shown.
  for (let i = 0; i < 50 && !console.some((line) => line === "log: no such job"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(console.includes("log: no such job"), console.join("\n"));
  assert.ok(!console.some((line) => line.startsWith("pageerror")), console.join("\n"));
  await page.close();
});
