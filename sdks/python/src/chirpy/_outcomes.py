"""Reporting a worker's outcomes: queued as handlers finish, sent in batches
(``BatchCompleteJobs``, ``BatchFailJobs``), each fenced by its lease.

Owns the retrying of those calls through transient errors (a server
restart) and the bookkeeping that lets a worker wait until everything it
queued was sent. What to report is decided by `chirpy.worker`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Optional, TypeVar, Union

import grpc

from chirpy import errors
from chirpy.errors import ChirpyError
from chirpy.v1 import worker_service_pb2, worker_service_pb2_grpc

logger = logging.getLogger("chirpy.worker")

_T = TypeVar("_T")

MAX_BATCH = 1000
"""Most items in one batch call (the server's limit)."""

Report = Union[worker_service_pb2.CompleteJobRequest, worker_service_pb2.FailJobRequest]
"""One outcome: a completion or a failure, with the job's lease."""


class Backoff:
    """Growing pauses with jitter between attempts of a failing call."""

    def __init__(self, first: float = 0.2, limit: float = 5.0) -> None:
        self._first = first
        self._limit = limit
        self._next = first

    def next(self) -> float:
        """The pause before the next attempt; each is about twice the last."""
        pause = self._next
        self._next = min(self._next * 2, self._limit)
        return pause * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        """Back to the first pause, after a success."""
        self._next = self._first


async def call(
    attempt: Callable[[], Awaitable[_T]],
    *,
    what: str,
    give_up_after: float,
) -> _T:
    """Runs ``attempt`` until it succeeds, pausing after transient errors,
    for about ``give_up_after`` seconds; other errors, and the last
    transient one, are raised as `ChirpyError`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    backoff = Backoff(first=0.1)
    while True:
        try:
            return await attempt()
        except ChirpyError as error:
            pause = backoff.next()
            if not errors.is_transient(error) or loop.time() + pause > deadline:
                raise
            logger.warning("cannot %s (%s); retrying in %.1fs", what, error, pause)
            await asyncio.sleep(pause)


@dataclass
class _Queued:
    report: Report
    sent: Callable[[], None]


class Reporter:
    """Sends queued outcomes in batches from one task; `flush` waits until
    all queued ones were sent (or given up on)."""

    def __init__(
        self,
        stub: worker_service_pb2_grpc.WorkerServiceAsyncStub,
        timeout: Optional[float],
        *,
        give_up_after: float = 30.0,
    ) -> None:
        self._stub = stub
        self._timeout = timeout
        self._give_up_after = give_up_after
        self._queue: list[_Queued] = []
        self._ready = asyncio.Event()
        self._unsent = 0
        self._flushed = asyncio.Event()
        self._flushed.set()

    def put(self, report: Report, sent: Callable[[], None]) -> None:
        """Queues ``report``; ``sent`` runs once the server answered for it
        (recorded or refused) or the reporter gave up on it."""
        self._queue.append(_Queued(report, sent))
        self._unsent += 1
        self._flushed.clear()
        self._ready.set()

    async def flush(self) -> None:
        """Waits until every queued outcome was sent."""
        await self._flushed.wait()

    async def run(self) -> None:
        """Sends outcomes as they are queued, until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    await self._send(batch)
                except Exception:
                    logger.exception("cannot report %d outcomes; their jobs run again later", len(batch))
                finally:
                    for item in batch:
                        item.sent()
                    self._unsent -= len(batch)
                    if self._unsent == 0:
                        self._flushed.set()

    async def _send(self, batch: Sequence[_Queued]) -> None:
        completions = [i.report for i in batch if isinstance(i.report, worker_service_pb2.CompleteJobRequest)]
        failures = [i.report for i in batch if isinstance(i.report, worker_service_pb2.FailJobRequest)]
        await asyncio.gather(self._complete(completions), self._fail(failures))

    async def _complete(self, reports: list[worker_service_pb2.CompleteJobRequest]) -> None:
        if not reports:
            return
        request = worker_service_pb2.BatchCompleteJobsRequest(jobs=reports)

        async def attempt() -> worker_service_pb2.BatchCompleteJobsResponse:
            return await unary(self._stub.BatchCompleteJobs(request, timeout=self._timeout))

        await self._deliver("completion", [r.id for r in reports], attempt)

    async def _fail(self, reports: list[worker_service_pb2.FailJobRequest]) -> None:
        if not reports:
            return
        request = worker_service_pb2.BatchFailJobsRequest(jobs=reports)

        async def attempt() -> worker_service_pb2.BatchFailJobsResponse:
            return await unary(self._stub.BatchFailJobs(request, timeout=self._timeout))

        await self._deliver("failure", [r.id for r in reports], attempt)

    async def _deliver(
        self,
        kind: str,
        ids: list[str],
        attempt: Callable[
            [],
            Awaitable[
                Union[worker_service_pb2.BatchCompleteJobsResponse, worker_service_pb2.BatchFailJobsResponse]
            ],
        ],
    ) -> None:
        try:
            response = await call(attempt, what=f"report {len(ids)} {kind}(s)", give_up_after=self._give_up_after)
        except ChirpyError as error:
            logger.error("%ss of %s lost (%s); the jobs run again when their leases expire", kind, ids, error)
            return
        for job_id, result in zip(ids, response.results):
            if result.HasField("error"):
                # Typically the lease was lost (the job expired and was
                # leased again) or the job was canceled meanwhile.
                logger.info("%s of job %s not recorded: %s", kind, job_id, errors.from_status(result.error))


async def unary(call: Awaitable[_T]) -> _T:
    """Awaits a grpc.aio call, raising `ChirpyError` for a failed one."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise errors.from_rpc_error(error) from error
