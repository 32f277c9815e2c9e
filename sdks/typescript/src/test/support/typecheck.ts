// Type-checking files that are not part of the package's own build (the
// README's examples, the browser page), with tsc's API.

import ts from "typescript";
import { packageDir } from "./server.js";

const base: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
};

const settings: Record<"node" | "browser", ts.CompilerOptions> = {
  // As a Node project would: `@chirpy/client` resolves with the `node` condition.
  node: {
    ...base,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ["node"],
    lib: ["lib.es2022.d.ts"],
  },
  // As a bundler would for a page: the `browser` condition, the DOM, no Node.
  browser: {
    ...base,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    customConditions: ["browser"],
    types: [],
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
  },
};

/** tsc's errors for `files` (inside the package, so `@chirpy/client` resolves to its own build), or `""`. */
export function typecheck(files: string[], runtime: "node" | "browser"): string {
  if (files.length === 0) return "";
  const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(files, settings[runtime]));
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => packageDir,
    getNewLine: () => "\n",
  });
}
