// The Node entry point (`@chirpy/client/node`, and `@chirpy/client` under
// Node): the shared API plus transports on Node's http2 and http modules.

import type { Transport } from "@connectrpc/connect";
import {
  createGrpcTransport,
  createGrpcWebTransport,
  type GrpcTransportOptions,
  type GrpcWebTransportOptions,
} from "@connectrpc/connect-node";

export * from "./api.js";

/** `Omit` applied to each member of a union. */
type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Options of `createNodeTransport`, passed on to connect-node's
 * `createGrpcTransport` (or `createGrpcWebTransport` with `protocol: "grpc-web"`).
 */
export type NodeTransportOptions =
  | ({ protocol?: "grpc" } & Omit<GrpcTransportOptions, "baseUrl">)
  | ({ protocol: "grpc-web" } & Partial<OmitEach<GrpcWebTransportOptions, "baseUrl">>);

/**
 * A transport to a Chirpy server from Node: gRPC over HTTP/2 (cleartext for
 * `http://`, TLS for `https://`), one connection multiplexing every call.
 * `{ protocol: "grpc-web" }` speaks gRPC-web instead (over HTTP/1.1 unless
 * `httpVersion: "2"`), for proxies that only pass HTTP/1.1.
 *
 * ```ts
 * const client = new ChirpyClient(createNodeTransport("http://localhost:7000"));
 * ```
 */
export function createNodeTransport(baseUrl: string, options: NodeTransportOptions = {}): Transport {
  if (options.protocol === "grpc-web") {
    const { protocol: _, ...rest } = options;
    return createGrpcWebTransport({ httpVersion: "1.1", ...rest, baseUrl } as GrpcWebTransportOptions);
  }
  const { protocol: _, ...rest } = options;
  return createGrpcTransport({ ...rest, baseUrl });
}
