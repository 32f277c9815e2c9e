"""`Client`: push and manage jobs over gRPC, blocking.

The asyncio twin is `chirpy.AsyncClient`, with the same methods. Workers
live in `chirpy.worker`.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Optional, TypeVar

import grpc

from chirpy import _channel, _requests, errors
from chirpy._channel import ChannelOptions
from chirpy._requests import NewJob, Schedule
from chirpy._wellknown import JSON
from chirpy.resources import Job, JobPage, JobState, Queue, RetryPolicy, WorkerInfo
from chirpy.v1 import job_service_pb2, job_service_pb2_grpc

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")

DEFAULT_TIMEOUT = 30.0
"""Seconds a call may take unless the client is given another timeout."""


class Client:
    """A blocking connection to Chirpy's ``JobService``.

    Thread-safe; one client (one HTTP/2 connection) serves a whole process.
    Close it with `close` or use it as a context manager::

        with Client("http://localhost:7000") as client:
            job = client.push("email", {"to": "user@example.com"})

    Every method raises a `chirpy.ChirpyError` subclass when the call fails
    (`chirpy.NotFound`, `chirpy.InvalidArgument`, `chirpy.Unavailable`, ...).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Optional[ChannelOptions] = None,
        wait_for_ready: bool = False,
    ) -> None:
        """Connects (lazily, at the first call) to the server at ``url``.

        ``url`` is ``http://host:port`` (plaintext), ``https://host:port``
        (TLS, with ``credentials`` or the system's roots), or a grpcio target
        such as ``host:port``. ``timeout`` bounds each call, in seconds
        (``None``: no bound). ``options`` are extra grpcio channel arguments.

        While the connection is down (the server restarting), calls fail at
        once with `chirpy.Unavailable`; with ``wait_for_ready`` they wait for
        it instead, up to ``timeout``.
        """
        self._init(_channel.sync_channel(url, credentials, options), timeout, wait_for_ready, owned=True)

    @classmethod
    def from_channel(
        cls,
        channel: grpc.Channel,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        wait_for_ready: bool = False,
    ) -> Client:
        """A client over an existing grpcio channel; `close` leaves it open."""
        client = cls.__new__(cls)
        client._init(channel, timeout, wait_for_ready, owned=False)
        return client

    def _init(
        self,
        channel: grpc.Channel,
        timeout: Optional[float],
        wait_for_ready: bool,
        *,
        owned: bool,
    ) -> None:
        self._channel = channel
        self._wait_for_ready = wait_for_ready
        self._owned = owned
        self._timeout = timeout
        self._stub = job_service_pb2_grpc.JobServiceStub(channel)

    @property
    def stub(self) -> job_service_pb2_grpc.JobServiceStub:
        """The generated ``JobService`` stub, for calls on raw messages."""
        return self._stub

    def close(self) -> None:
        """Closes the connection (unless it came from `from_channel`)."""
        if self._owned:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def _call(self, method: grpc.UnaryUnaryMultiCallable[_Request, _Response], request: _Request) -> _Response:
        try:
            return method(request, timeout=self._timeout, wait_for_ready=self._wait_for_ready)
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from error

    def push(
        self,
        queue: str,
        payload: JSON,
        *,
        scheduled_at: Optional[Schedule] = None,
        priority: int = 0,
        max_attempts: int = 0,
        idempotency_key: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        retry_policy: Optional[RetryPolicy] = None,
    ) -> Job:
        """Pushes one job to ``queue`` (created on first push) and returns it
        as stored.

        ``payload`` is any JSON value. ``scheduled_at`` (a ``datetime``, or a
        ``timedelta`` from now) delays it; ``priority`` (zero or more) orders
        it before lower ones; ``max_attempts`` (1 to 1000, 0 for the
        server's 25) bounds its retries; ``retry_policy`` sets its own
        backoff. When ``idempotency_key`` matches an existing job of the
        queue, that job is returned (with ``deduplicated`` true) and nothing
        is created.

        Raises `chirpy.InvalidArgument` (with ``field``) for a bad queue name,
        payload or option.
        """
        job = NewJob(payload, scheduled_at, priority, max_attempts, idempotency_key, metadata, retry_policy)
        response = self._call(self._stub.PushJob, _requests.push(queue, job))
        return Job.from_proto(response.job, deduplicated=response.deduplicated)

    def batch_push(self, queue: str, jobs: Iterable[JSON | NewJob]) -> builtins.list[Job]:
        """Pushes 1 to 1000 jobs to ``queue`` in one transaction: all are
        stored or none. Each item is a `NewJob` or a bare payload. Returns the
        jobs in request order (deduplicated ones included)."""
        response = self._call(self._stub.BatchPushJobs, _requests.batch_push(queue, jobs))
        return [Job.from_proto(r.job, deduplicated=r.deduplicated) for r in response.results]

    def get(self, queue: str, job_id: str) -> Job:
        """Returns one job. Raises `chirpy.NotFound` for an unknown one."""
        request = job_service_pb2.GetJobRequest(queue=queue, id=job_id)
        return Job.from_proto(self._call(self._stub.GetJob, request).job)

    def list_page(
        self,
        queue: str,
        *,
        state: JobState | str | None = None,
        page_size: int = 100,
        page_token: Optional[str] = None,
    ) -> JobPage:
        """Returns one page of ``queue``'s jobs, oldest first, optionally only
        those in ``state``. Pass the page's ``next_page_token`` (with the same
        ``state``) for the next one."""
        request = _requests.list_jobs(queue, state, page_size, page_token)
        response = self._call(self._stub.ListJobs, request)
        return JobPage([Job.from_proto(j) for j in response.jobs], response.next_page_token or None)

    def list(self, queue: str, *, state: JobState | str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Iterates over every job of ``queue``, oldest first, optionally only
        those in ``state``, fetching pages of ``page_size`` as it goes."""
        token: Optional[str] = None
        while True:
            page = self.list_page(queue, state=state, page_size=page_size, page_token=token)
            yield from page.jobs
            if page.next_page_token is None:
                return
            token = page.next_page_token

    def cancel(self, queue: str, job_id: str) -> Job:
        """Cancels a job that has not finished and returns it, ``CANCELED``.
        A running job's worker learns it at its next heartbeat. Raises
        `chirpy.FailedPrecondition` for a finished job."""
        request = job_service_pb2.CancelJobRequest(queue=queue, id=job_id)
        return Job.from_proto(self._call(self._stub.CancelJob, request).job)

    def retry(self, queue: str, job_id: str) -> Job:
        """Brings a ``DEAD`` job back to ``PENDING`` with its attempts reset.
        Raises `chirpy.FailedPrecondition` for a job in any other state."""
        request = job_service_pb2.RetryJobRequest(queue=queue, id=job_id)
        return Job.from_proto(self._call(self._stub.RetryJob, request).job)

    def retry_dead(self, queue: str, job_ids: Optional[Iterable[str]] = None) -> builtins.list[str]:
        """Retries dead jobs in bulk: those of ``job_ids`` (at most 1000;
        others are skipped), or every dead job of ``queue`` when ``None``.
        Returns the ids now ``PENDING``."""
        request = job_service_pb2.BatchRetryJobsRequest(queue=queue, ids=list(job_ids or ()))
        return builtins.list(self._call(self._stub.BatchRetryJobs, request).retried_ids)

    def queues(self) -> builtins.list[Queue]:
        """Every queue that holds jobs, by name, with per-state counts."""
        queues: builtins.list[Queue] = []
        token = ""
        while True:
            request = job_service_pb2.ListQueuesRequest(page_size=1000, page_token=token)
            response = self._call(self._stub.ListQueues, request)
            queues.extend(Queue.from_proto(q) for q in response.queues)
            if not response.next_page_token:
                return queues
            token = response.next_page_token

    def workers(self) -> builtins.list[WorkerInfo]:
        """The workers heard from in the last five minutes, most recent
        first."""
        response = self._call(self._stub.ListWorkers, job_service_pb2.ListWorkersRequest())
        return [WorkerInfo.from_proto(w) for w in response.workers]
