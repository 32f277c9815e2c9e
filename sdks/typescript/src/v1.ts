// The generated API (`@chirpy/client/v1`): service descriptors for
// `createClient(JobService, transport)`, and every message and enum of
// chirpy.v1, for what the `ChirpyClient` and `Worker` do not cover.

export * from "./gen/chirpy/v1/job_pb.js";
export * from "./gen/chirpy/v1/job_service_pb.js";
export * from "./gen/chirpy/v1/worker_service_pb.js";
