"""`AsyncClient`: push and manage jobs over gRPC with asyncio (grpc.aio).

The same methods as the blocking `chirpy.Client`, as coroutines; `list` is
an async generator. `chirpy.Worker` runs on an ``AsyncClient``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Optional, TypeVar

import grpc

from chirpy import _channel, _requests, errors
from chirpy._channel import ChannelOptions
from chirpy._requests import NewJob, Schedule
from chirpy._wellknown import JSON
from chirpy.client import DEFAULT_TIMEOUT
from chirpy.resources import Job, JobPage, JobState, Queue, RetryPolicy, WorkerInfo
from chirpy.v1 import job_service_pb2, job_service_pb2_grpc, worker_service_pb2_grpc

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class AsyncClient:
    """An asyncio connection to Chirpy's ``JobService`` (and, for
    `chirpy.Worker`, its ``WorkerService``).

    Create it inside the event loop that uses it, and close it with `close`
    or ``async with``::

        async with AsyncClient("http://localhost:7000") as client:
            job = await client.push("email", {"to": "user@example.com"})

    Every method raises a `chirpy.ChirpyError` subclass when the call fails.
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
        (``None``: no bound); a worker's long polls get their own. With
        ``wait_for_ready``, calls made while the connection is down wait for
        it (up to ``timeout``) instead of failing with `chirpy.Unavailable`.
        """
        self._init(_channel.aio_channel(url, credentials, options), timeout, wait_for_ready, owned=True)

    @classmethod
    def from_channel(
        cls,
        channel: grpc.aio.Channel,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        wait_for_ready: bool = False,
    ) -> AsyncClient:
        """A client over an existing grpc.aio channel; `close` leaves it open."""
        client = cls.__new__(cls)
        client._init(channel, timeout, wait_for_ready, owned=False)
        return client

    def _init(
        self,
        channel: grpc.aio.Channel,
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
        self._worker_stub = worker_service_pb2_grpc.WorkerServiceStub(channel)

    @property
    def stub(self) -> job_service_pb2_grpc.JobServiceAsyncStub:
        """The generated ``JobService`` stub, for calls on raw messages."""
        return self._stub

    @property
    def worker_stub(self) -> worker_service_pb2_grpc.WorkerServiceAsyncStub:
        """The generated ``WorkerService`` stub: the worker protocol, raw."""
        return self._worker_stub

    @property
    def timeout(self) -> Optional[float]:
        """Seconds each call may take, or ``None``."""
        return self._timeout

    async def close(self) -> None:
        """Closes the connection (unless it came from `from_channel`)."""
        if self._owned:
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
    ) -> _Response:
        try:
            return await method(request, timeout=self._timeout, wait_for_ready=self._wait_for_ready)
        except grpc.aio.AioRpcError as error:
            raise errors.from_rpc_error(error) from error

    async def push(
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
        """Pushes one job to ``queue`` and returns it as stored. See
        `chirpy.Client.push` for the options."""
        job = NewJob(payload, scheduled_at, priority, max_attempts, idempotency_key, metadata, retry_policy)
        response = await self._call(self._stub.PushJob, _requests.push(queue, job))
        return Job.from_proto(response.job, deduplicated=response.deduplicated)

    async def batch_push(self, queue: str, jobs: Iterable[JSON | NewJob]) -> builtins.list[Job]:
        """Pushes 1 to 1000 jobs (`NewJob`s or bare payloads) to ``queue`` in
        one transaction: all or none. Returns them in request order."""
        response = await self._call(self._stub.BatchPushJobs, _requests.batch_push(queue, jobs))
        return [Job.from_proto(r.job, deduplicated=r.deduplicated) for r in response.results]

    async def get(self, queue: str, job_id: str) -> Job:
        """Returns one job. Raises `chirpy.NotFound` for an unknown one."""
        request = job_service_pb2.GetJobRequest(queue=queue, id=job_id)
        return Job.from_proto((await self._call(self._stub.GetJob, request)).job)

    async def list_page(
        self,
        queue: str,
        *,
        state: JobState | str | None = None,
        page_size: int = 100,
        page_token: Optional[str] = None,
    ) -> JobPage:
        """Returns one page of ``queue``'s jobs, oldest first, optionally only
        those in ``state``; pass ``next_page_token`` for the next."""
        request = _requests.list_jobs(queue, state, page_size, page_token)
        response = await self._call(self._stub.ListJobs, request)
        return JobPage([Job.from_proto(j) for j in response.jobs], response.next_page_token or None)

    async def list(
        self,
        queue: str,
        *,
        state: JobState | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Iterates (``async for``) over every job of ``queue``, oldest
        first, optionally only those in ``state``, a page at a time."""
        token: Optional[str] = None
        while True:
            page = await self.list_page(queue, state=state, page_size=page_size, page_token=token)
            for job in page.jobs:
                yield job
            if page.next_page_token is None:
                return
            token = page.next_page_token

    async def cancel(self, queue: str, job_id: str) -> Job:
        """Cancels a job that has not finished and returns it, ``CANCELED``.
        Raises `chirpy.FailedPrecondition` for a finished job."""
        request = job_service_pb2.CancelJobRequest(queue=queue, id=job_id)
        return Job.from_proto((await self._call(self._stub.CancelJob, request)).job)

    async def retry(self, queue: str, job_id: str) -> Job:
        """Brings a ``DEAD`` job back to ``PENDING`` with its attempts reset.
        Raises `chirpy.FailedPrecondition` for any other state."""
        request = job_service_pb2.RetryJobRequest(queue=queue, id=job_id)
        return Job.from_proto((await self._call(self._stub.RetryJob, request)).job)

    async def retry_dead(self, queue: str, job_ids: Optional[Iterable[str]] = None) -> builtins.list[str]:
        """Retries the dead jobs of ``job_ids``, or every dead job of
        ``queue`` when ``None``. Returns the ids now ``PENDING``."""
        request = job_service_pb2.BatchRetryJobsRequest(queue=queue, ids=builtins.list(job_ids or ()))
        return builtins.list((await self._call(self._stub.BatchRetryJobs, request)).retried_ids)

    async def queues(self) -> builtins.list[Queue]:
        """Every queue that holds jobs, by name, with per-state counts."""
        queues: builtins.list[Queue] = []
        token = ""
        while True:
            request = job_service_pb2.ListQueuesRequest(page_size=1000, page_token=token)
            response = await self._call(self._stub.ListQueues, request)
            queues.extend(Queue.from_proto(q) for q in response.queues)
            if not response.next_page_token:
                return queues
            token = response.next_page_token

    async def workers(self) -> builtins.list[WorkerInfo]:
        """The workers heard from in the last five minutes, most recent
        first."""
        response = await self._call(self._stub.ListWorkers, job_service_pb2.ListWorkersRequest())
        return [WorkerInfo.from_proto(w) for w in response.workers]
