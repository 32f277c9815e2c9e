"""Chirpy job server client and worker.

- `Client` (blocking) and `AsyncClient` (asyncio): push, batch push, get,
  list, cancel and retry jobs; list queues and workers.
- `Worker`: runs an asyncio (or plain) handler on a queue's jobs, with
  concurrency, heartbeats and graceful shutdown. A handler raises
  `NonRetryable` to send its job to the failure queue, `RetryAfter` to set
  the wait before the next attempt.
- `Job`, `JobState`, `Queue`, `WorkerInfo`: what the server returns, as
  dataclasses (``raw`` holds the protobuf message).
- `ChirpyError` and one subclass per gRPC code (`NotFound`,
  `InvalidArgument`, `FailedPrecondition`, ...): what failed calls raise.

The generated protobuf and gRPC modules are in `chirpy.v1`
(``from chirpy.v1 import job_pb2, job_service_pb2_grpc``).
"""

from chirpy._requests import NewJob
from chirpy.async_client import AsyncClient
from chirpy.client import Client
from chirpy.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    ChirpyError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from chirpy.handler import Handler, NonRetryable, RetryAfter
from chirpy.resources import Job, JobPage, JobState, Lease, Queue, RetryPolicy, WorkerInfo
from chirpy.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "ChirpyError",
    "Client",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Handler",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobPage",
    "JobState",
    "Lease",
    "NewJob",
    "NonRetryable",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Queue",
    "ResourceExhausted",
    "RetryAfter",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "Worker",
    "WorkerInfo",
]
