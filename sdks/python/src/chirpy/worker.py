"""`Worker`: runs a handler on the jobs of one queue, over asyncio.

The worker speaks ``chirpy.v1.WorkerService``:

- **Leasing.** Whenever a handler slot is free it leases with a long poll
  (``LeaseJobs`` with ``wait``) as many jobs as it has free slots, at most
  ``batch_size``; a push reaches an idle worker at once. At most
  ``concurrency`` handlers run at the same time, and the worker holds no job
  it cannot start, so other workers take the rest. A job this worker leases
  again while it still holds it (its older lease expired, e.g. heartbeats
  failed for longer than the lease TTL) stops the run of the older lease as
  lost.
- **Outcomes** are reported as handlers finish, batched
  (``BatchCompleteJobs``, ``BatchFailJobs``): a return value is the job's
  result; an exception a retryable failure; `NonRetryable` sends the job to
  the failure queue; `RetryAfter` sets the wait before the next attempt.
- **Heartbeats**, at the interval the server suggests, renew the leases of
  every job the worker holds. A job the server reports canceled or lost has
  its handler cancelled (``asyncio.CancelledError`` inside it) and its
  outcome dropped. The ``QUIET`` directive (the server shutting down) pauses
  leasing until a heartbeat says otherwise.
- **Transient errors** (the server restarting, a network blip) are logged and
  retried with backoff; they never end `Worker.run`.
- **Shutdown** (`Worker.stop`, or cancelling `Worker.run`) is graceful: no
  more leases, jobs leased but not started are handed back (``ReleaseJobs``:
  pending again, the attempt not counted), running handlers finish and their
  outcomes are sent.

Delivery is at least once: a job whose outcome could not be reported runs
again once its lease expires. Handlers should be idempotent.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Union

from chirpy import _outcomes, _wellknown, errors
from chirpy._outcomes import Backoff, Reporter, unary
from chirpy.async_client import AsyncClient
from chirpy.errors import ChirpyError
from chirpy.handler import Handler, NonRetryable, RetryAfter, describe, is_async
from chirpy.resources import Job
from chirpy.v1 import worker_service_pb2

logger = logging.getLogger("chirpy.worker")

_WORKER_ID = re.compile(r"[^A-Za-z0-9_.:@-]")

# Heartbeats the server asks for are kept within these bounds (seconds).
_MIN_HEARTBEAT, _MAX_HEARTBEAT, _FIRST_HEARTBEAT = 0.2, 60.0, 10.0
# Seconds a long poll may take beyond its wait before it counts as failed.
_LONG_POLL_SLACK = 10.0
# Seconds a heartbeat or release call may take.
_CALL_TIMEOUT = 10.0


@dataclass(eq=False)
class _Held:
    """A job this worker leased and has not reported yet."""

    job: Job
    lease_id: str
    task: Optional[asyncio.Task[None]] = None
    stopped: bool = False
    """Canceled or lost on the server: stop it, drop its outcome."""
    interrupted: bool = False
    """Cancelled by the shutdown timeout: report it as a failure."""
    reported: bool = False
    """Its outcome is queued: the reporter forgets it once sent."""


class Worker:
    """Runs ``handler`` on the jobs of ``queue``, ``concurrency`` at a time.

    ::

        async def send_email(job: Job) -> dict[str, bool]:
            await smtp.send(job.payload["to"])
            return {"sent": True}

        async with AsyncClient("http://localhost:7000") as client:
            worker = Worker(client, "email", send_email, concurrency=8)
            await worker.run()  # until worker.stop() or cancellation
    """

    def __init__(
        self,
        client_or_url: Union[AsyncClient, str],
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 10,
        batch_size: int = 10,
        long_poll: float = 20.0,
        worker_id: Optional[str] = None,
        shutdown_timeout: Optional[float] = None,
    ) -> None:
        """Configures a worker; `run` starts it.

        - ``client_or_url``: an `AsyncClient`, or a URL for one the worker
          opens in `run` and closes when it ends.
        - ``concurrency``: most handlers running at once.
        - ``batch_size``: most jobs leased per call (1 to 1000). A call
          never asks for more jobs than there are free handler slots, so
          a ``batch_size`` above ``concurrency`` changes nothing.
        - ``long_poll``: seconds a lease call waits for a job when none is
          ready (0 to 30).
        - ``worker_id``: the id the server knows the worker by,
          ``[A-Za-z0-9_.:@-]{1,128}`` and unique among live workers; by
          default ``queue@host:pid.random``.
        - ``shutdown_timeout``: seconds running handlers get to finish once
          stopping; then they are cancelled and their jobs failed (to be
          retried). ``None`` waits for them.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 1 <= batch_size <= _outcomes.MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {_outcomes.MAX_BATCH}")
        if not 0 <= long_poll <= 30:
            raise ValueError("long_poll must be 0 to 30 seconds")
        self._client = client_or_url if isinstance(client_or_url, AsyncClient) else None
        self._url = client_or_url if isinstance(client_or_url, str) else None
        self._queue = queue
        self._handler = handler
        self._is_async = is_async(handler)
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._long_poll = float(long_poll)
        self._worker_id = worker_id or _default_worker_id(queue)
        self._shutdown_timeout = shutdown_timeout

        self._started = False
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._quiet = False
        self._heartbeat_interval = _FIRST_HEARTBEAT
        self._held: dict[str, _Held] = {}
        self._waiting: collections.deque[_Held] = collections.deque()
        self._running: set[_Held] = set()

    @property
    def worker_id(self) -> str:
        """The id the server knows this worker by."""
        return self._worker_id

    @property
    def queue(self) -> str:
        """The queue it works."""
        return self._queue

    @property
    def running(self) -> int:
        """How many handlers run now."""
        return len(self._running)

    @property
    def quiet(self) -> bool:
        """True while the server asked it to lease nothing (``QUIET``)."""
        return self._quiet

    def stop(self) -> None:
        """Asks `run` to stop gracefully and return. Safe to call more than
        once and before `run`. Call it from the event loop's thread (a signal
        handler set with ``loop.add_signal_handler`` is fine); from another
        thread use ``loop.call_soon_threadsafe(worker.stop)``."""
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        """Works the queue until `stop` is called or this coroutine is
        cancelled, then shuts down gracefully and returns (or re-raises the
        cancellation). A second cancellation during shutdown cancels the
        running handlers at once.

        Raises `ChirpyError` for errors that retrying cannot fix, such as an
        invalid queue name or worker id (`chirpy.InvalidArgument`). A worker
        runs once.
        """
        if self._started:
            raise RuntimeError("a Worker runs once; create a new one")
        self._started = True
        client = self._client if self._client is not None else AsyncClient(self._url or "")
        try:
            await self._serve(client)
        finally:
            if self._client is None:
                await client.close()

    async def _serve(self, client: AsyncClient) -> None:
        self._stub = client.worker_stub
        self._reporter = Reporter(self._stub, client.timeout)
        if not await self._register():
            return
        logger.info("worker %s working queue %s", self._worker_id, self._queue)
        heartbeats = asyncio.create_task(self._heartbeats(), name=f"chirpy-heartbeat-{self._worker_id}")
        reporting = asyncio.create_task(self._reporter.run(), name=f"chirpy-report-{self._worker_id}")
        try:
            await self._lease_until_stopped()
        finally:
            self._stopping.set()
            await self._shut_down(heartbeats, reporting)

    # -- registering and heartbeats ------------------------------------------

    async def _register(self) -> bool:
        """The first heartbeat: retried through transient errors until it
        succeeds (True) or the worker is stopped (False)."""
        backoff = Backoff(first=0.5)
        while not self._stopping.is_set():
            try:
                await self._heartbeat()
                return True
            except ChirpyError as error:
                if not errors.is_transient(error):
                    raise
                pause = backoff.next()
                logger.warning("cannot register worker %s (%s); retrying in %.1fs", self._worker_id, error, pause)
                await self._sleep(pause)
        return False

    async def _heartbeats(self) -> None:
        failing = False
        backoff = Backoff(first=0.5)
        while True:
            pause = min(backoff.next(), self._heartbeat_interval) if failing else self._heartbeat_interval
            await asyncio.sleep(pause)
            try:
                await self._heartbeat()
            except Exception as error:
                if not failing:
                    logger.warning("heartbeat failed (%s); leases expire if this lasts", error)
                failing = True
                continue
            if failing:
                logger.info("heartbeats resumed")
                failing = False
                backoff.reset()

    async def _heartbeat(self) -> None:
        # The answer is about the leases held when it was asked: a job leased
        # again meanwhile (a new lease, the same id) may be reported lost for
        # its older lease, and must not be stopped for it.
        sent = dict(self._held)
        request = worker_service_pb2.HeartbeatRequest(
            worker_id=self._worker_id,
            queues=[self._queue],
            running_job_ids=list(sent),
        )
        response = await unary(self._stub.Heartbeat(request, timeout=_CALL_TIMEOUT))
        for job_id in response.canceled_job_ids:
            self._stop_job(sent, job_id, "canceled")
        for job_id in response.lost_job_ids:
            self._stop_job(sent, job_id, "lost")
        quiet = response.directive == worker_service_pb2.WORKER_DIRECTIVE_QUIET
        if quiet != self._quiet:
            logger.info("server directive: %s", "QUIET (leasing paused)" if quiet else "RUN")
            self._quiet = quiet
            self._changed.set()
        if response.HasField("heartbeat_interval"):
            seconds = _wellknown.from_duration(response.heartbeat_interval).total_seconds()
            self._heartbeat_interval = min(max(seconds, _MIN_HEARTBEAT), _MAX_HEARTBEAT)

    def _stop_job(self, sent: dict[str, _Held], job_id: str, why: str) -> None:
        """Stops the lease of ``job_id`` that a heartbeat named (``sent``: the
        leases it named), if still held."""
        held = sent.get(job_id)
        if held is not None and self._held.get(job_id) is held:
            self._stop(held, why)

    def _stop(self, held: _Held, why: str) -> None:
        """Stops a job the server canceled or gave away: not started, it is
        dropped; running, its handler is cancelled; its outcome is dropped."""
        if held.stopped:
            return
        held.stopped = True
        logger.info("job %s was %s on the server; stopping it", held.job.id, why)
        if held.task is None:
            if held in self._waiting:
                self._waiting.remove(held)
                self._forget(held)
                self._changed.set()
        elif not held.task.done():
            held.task.cancel()

    # -- leasing and running ---------------------------------------------------

    async def _lease_until_stopped(self) -> None:
        backoff = Backoff(first=0.5)
        while True:
            self._changed.clear()
            if self._stopping.is_set():
                return
            # Only as many jobs as can start now: a job leased beyond the free
            # slots would wait here while another worker could run it.
            free = self._concurrency - len(self._running) - len(self._waiting)
            if self._quiet or free <= 0:
                await self._changed.wait()
                continue
            try:
                leased = await self._lease(min(free, self._batch_size))
            except ChirpyError as error:
                if not errors.is_transient(error):
                    raise
                pause = backoff.next()
                logger.warning("cannot lease jobs (%s); retrying in %.1fs", error, pause)
                await self._sleep(pause)
                continue
            backoff.reset()
            for item in leased:
                held = _Held(Job.from_proto(item.job), item.lease_id)
                older = self._held.get(held.job.id)
                if older is not None:
                    # Leased again while this worker still holds it: the older
                    # lease expired and the job was handed out anew. Its run
                    # would be refused, and heartbeats, which name jobs by id,
                    # would never report it lost.
                    self._stop(older, "lost")
                self._held[held.job.id] = held
                self._waiting.append(held)
            self._dispatch()

    async def _lease(self, max_jobs: int) -> list[worker_service_pb2.LeasedJob]:
        """One long poll for up to ``max_jobs`` jobs, cut short by `stop` (its
        jobs are then lost until their leases expire, unless the answer had
        already arrived)."""
        request = worker_service_pb2.LeaseJobsRequest(
            worker_id=self._worker_id,
            queues=[self._queue],
            max_jobs=max_jobs,
            wait=_wellknown.to_duration(self._long_poll),
        )
        lease = asyncio.ensure_future(
            unary(self._stub.LeaseJobs(request, timeout=self._long_poll + _LONG_POLL_SLACK))
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({lease, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not lease.done():
                lease.cancel()
        if lease not in done:
            return []
        return list(lease.result().leases)

    def _dispatch(self) -> None:
        """Starts waiting jobs while handler slots are free."""
        while self._waiting and len(self._running) < self._concurrency and not self._stopping.is_set():
            held = self._waiting.popleft()
            self._running.add(held)
            held.task = asyncio.create_task(self._execute(held), name=f"chirpy-job-{held.job.id}")
            # A callback, not a `finally`: it also runs for a task cancelled
            # before it started.
            held.task.add_done_callback(functools.partial(self._finished, held))

    async def _execute(self, held: _Held) -> None:
        """Runs the handler on one job and queues its outcome."""
        report = await self._outcome(held)
        if not held.stopped:
            held.reported = True
            self._reporter.put(report, functools.partial(self._forget, held))

    def _finished(self, held: _Held, task: asyncio.Task[None]) -> None:
        self._running.discard(held)
        if not held.reported:
            self._forget(held)
        if not task.cancelled() and task.exception() is not None:
            logger.error("job %s: the worker failed to run it", held.job.id, exc_info=task.exception())
        self._dispatch()
        self._changed.set()

    async def _outcome(self, held: _Held) -> _outcomes.Report:
        job = held.job
        try:
            result = await self._invoke(job)
        except asyncio.CancelledError:
            if held.stopped:
                raise
            if held.interrupted:
                return self._failure(held, "interrupted: the worker shut down before the handler finished")
            return self._failure(held, "the handler was cancelled")
        except NonRetryable as error:
            return self._failure(held, describe(error), non_retryable=True)
        except RetryAfter as error:
            return self._failure(held, describe(error), retry_after=error.delay)
        except Exception as error:
            # The traceback is not kept in the job's last_error: log it.
            logger.warning("job %s failed (attempt %d): %s", job.id, job.attempts, describe(error), exc_info=True)
            return self._failure(held, describe(error))
        try:
            value = _wellknown.to_value(result)
        except (TypeError, ValueError) as error:
            return self._failure(held, f"the handler's result is not JSON: {error}")
        return worker_service_pb2.CompleteJobRequest(
            queue=job.queue, id=job.id, lease_id=held.lease_id, result=value
        )

    async def _invoke(self, job: Job) -> Any:
        if self._is_async:
            return await self._handler(job)
        result = await asyncio.to_thread(self._handler, job)
        if inspect.isawaitable(result):
            return await result
        return result

    @staticmethod
    def _failure(
        held: _Held,
        error: str,
        *,
        non_retryable: bool = False,
        retry_after: Optional[timedelta] = None,
    ) -> worker_service_pb2.FailJobRequest:
        request = worker_service_pb2.FailJobRequest(
            queue=held.job.queue,
            id=held.job.id,
            lease_id=held.lease_id,
            error=error,
            non_retryable=non_retryable,
        )
        if retry_after is not None:
            request.retry_after.CopyFrom(_wellknown.to_duration(retry_after))
        return request

    def _forget(self, held: _Held) -> None:
        """Stops renewing ``held``'s lease: its outcome was sent or dropped."""
        if self._held.get(held.job.id) is held:
            del self._held[held.job.id]

    # -- shutting down ---------------------------------------------------------

    async def _shut_down(self, heartbeats: asyncio.Task[None], reporting: asyncio.Task[None]) -> None:
        """Hands back unstarted jobs, lets running handlers finish, sends
        their outcomes; heartbeats go on meanwhile. Cancelled, it cancels
        what still runs."""
        try:
            await self._release_waiting()
            await self._finish_running()
            await self._reporter.flush()
            logger.info("worker %s stopped", self._worker_id)
        finally:
            for held in list(self._running):
                if held.task is not None:
                    held.interrupted = True
                    held.task.cancel()
            heartbeats.cancel()
            reporting.cancel()
            await asyncio.gather(heartbeats, reporting, return_exceptions=True)

    async def _release_waiting(self) -> None:
        waiting = list(self._waiting)
        self._waiting.clear()
        for start in range(0, len(waiting), _outcomes.MAX_BATCH):
            chunk = waiting[start : start + _outcomes.MAX_BATCH]
            request = worker_service_pb2.ReleaseJobsRequest(
                jobs=[
                    worker_service_pb2.JobLease(queue=h.job.queue, id=h.job.id, lease_id=h.lease_id)
                    for h in chunk
                ]
            )

            async def attempt(
                request: worker_service_pb2.ReleaseJobsRequest = request,
            ) -> worker_service_pb2.ReleaseJobsResponse:
                return await unary(self._stub.ReleaseJobs(request, timeout=_CALL_TIMEOUT))

            try:
                response = await _outcomes.call(attempt, what="hand back unstarted jobs", give_up_after=10.0)
            except ChirpyError as error:
                logger.warning("cannot hand back %d unstarted jobs (%s); their leases will expire", len(chunk), error)
            else:
                for held, result in zip(chunk, response.results):
                    if result.HasField("error"):
                        logger.info("job %s not handed back: %s", held.job.id, errors.from_status(result.error))
                logger.info("handed back %d unstarted jobs", len(chunk))
            finally:
                for held in chunk:
                    self._forget(held)

    async def _finish_running(self) -> None:
        tasks = [h.task for h in self._running if h.task is not None]
        if not tasks:
            return
        logger.info("waiting for %d running jobs to finish", len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self._shutdown_timeout)
        if pending:
            logger.warning("cancelling %d jobs still running after the shutdown timeout", len(pending))
            for held in list(self._running):
                if held.task in pending:
                    held.interrupted = True
                    held.task.cancel()
            await asyncio.wait(pending)

    async def _sleep(self, seconds: float) -> None:
        """Sleeps, cut short by `stop`."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


def _default_worker_id(queue: str) -> str:
    """``queue@host:pid.random``, cut to the server's 128 characters."""
    host = _WORKER_ID.sub("-", socket.gethostname())[:48] or "host"
    suffix = f":{os.getpid()}.{secrets.token_hex(4)}"
    name = _WORKER_ID.sub("-", queue)[: 128 - len(suffix) - len(host) - 1] or "worker"
    return f"{name}@{host}{suffix}"
