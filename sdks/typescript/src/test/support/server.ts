// The real `chirpy` binary on 127.0.0.1 with a throwaway SQLite database, as
// the tests' server. CHIRPY_BIN names the binary (default: the workspace's
// target/debug/chirpy); nothing here builds it.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** sdks/typescript, from dist/test/support. */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export const chirpyBin = process.env.CHIRPY_BIN ?? resolve(packageDir, "../../target/debug/chirpy");

export interface ChirpyServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** The folder of its database. */
  dir: string;
  /**
   * Sends SIGTERM and waits for the exit (SIGKILL after 10 s); then deletes
   * the database unless `keepData` (to start another server on it).
   */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export interface ServerOptions {
  /** More environment variables. */
  env?: Record<string, string>;
  /** The port; default: any free one. */
  port?: number;
  /** The folder of the database, to restart a server on it; default: a new one. */
  dir?: string;
}

/** Starts the server and resolves once it logs `chirpy listening on 127.0.0.1:PORT`. */
export async function startServer(options: ServerOptions = {}): Promise<ChirpyServer> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "chirpy-ts-")));
  const child = spawn(chirpyBin, [], {
    env: {
      ...process.env,
      CHIRPY_HOST: "127.0.0.1",
      CHIRPY_PORT: String(options.port ?? 0),
      DATABASE_URL: `sqlite://${dir}/chirpy.db`,
      CHIRPY_LEASE_TTL: "3s",
      CHIRPY_RETRY_INITIAL_BACKOFF: "1s",
      CHIRPY_RETRY_MAX_BACKOFF: "1s",
      CHIRPY_LOG: "warn,chirpy=info",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    // The last few KiB, for the error message should the server die.
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stderr!.on("data", keep);
  try {
    const port = await new Promise<number>((resolvePort, reject) => {
      const timer = setTimeout(() => reject(new Error(`chirpy did not start in 30 s:\n${output}`)), 30_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${chirpyBin} (set CHIRPY_BIN): ${err.message}`));
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`chirpy exited with ${code} before listening:\n${output}`));
      });
      child.stdout!.on("data", (chunk: Buffer) => {
        keep(chunk);
        const match = /chirpy listening on (127\.0\.0\.1:\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolvePort(Number(match[1]!.split(":")[1]));
        }
      });
    });
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      dir,
      stop: (opts = {}) => stop(child, opts.keepData ? undefined : dir),
    };
  } catch (err) {
    await stop(child, options.dir ? undefined : dir);
    throw err;
  }
}

async function stop(child: ChildProcess, dir: string | undefined): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}
