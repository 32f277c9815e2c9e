// The browser entry point (`@chirpy/client/web`, and `@chirpy/client` for
// bundlers and browsers): the shared API plus a gRPC-web transport on fetch.

import type { Transport } from "@connectrpc/connect";
import { createGrpcWebTransport, type GrpcWebTransportOptions } from "@connectrpc/connect-web";

export * from "./api.js";

/** Options of `createBrowserTransport`, passed on to connect-web. */
export type BrowserTransportOptions = Omit<GrpcWebTransportOptions, "baseUrl">;

/**
 * A transport to a Chirpy server from a browser (or any runtime with
 * `fetch`): gRPC-web, binary. Chirpy answers CORS requests from any origin.
 *
 * ```ts
 * const client = new ChirpyClient(createBrowserTransport("https://chirpy.example.com"));
 * ```
 */
export function createBrowserTransport(baseUrl: string, options: BrowserTransportOptions = {}): Transport {
  return createGrpcWebTransport({ ...options, baseUrl });
}
