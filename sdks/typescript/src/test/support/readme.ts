// The README's ```ts examples, which the tests run: `ts node` blocks with
// Node, `ts browser` blocks in Chromium. A `worker` tag marks a block that
// runs until it is sent SIGTERM.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageDir } from "./server.js";

export interface Example {
  /** 1-based, in README order. */
  index: number;
  runtime: "node" | "browser";
  worker: boolean;
  /** The line of the opening fence, for messages. */
  line: number;
  code: string;
}

/** The examples of sdks/typescript/README.md, with `http://localhost:7000` pointed at `url`. */
export function readmeExamples(url = "http://localhost:7000"): Example[] {
  const text = readFileSync(join(packageDir, "README.md"), "utf8");
  const examples: Example[] = [];
  const fence = /^```ts (node|browser)( worker)?\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(text); m; m = fence.exec(text)) {
    examples.push({
      index: examples.length + 1,
      runtime: m[1] as "node" | "browser",
      worker: m[2] !== undefined,
      line: text.slice(0, m.index).split("\n").length,
      code: m[3]!.replaceAll("http://localhost:7000", url),
    });
  }
  return examples;
}
