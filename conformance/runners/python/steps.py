"""The steps: each is one call of the SDK's public asyncio API.

Client steps call a `chirpy.AsyncClient`; worker steps start and stop
`chirpy.Worker`s on that same client, as tasks of the runner's event loop,
so that they work in the background while later steps run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import chirpy
import shapes
from handler import Behaviours
from shapes import Args, JSONObject, Unexpressible

logger = logging.getLogger("runner.steps")

DEFAULT_CONCURRENCY = 4
"""A worker's concurrency when ``start_worker`` gives none (the protocol's
default, not the SDK's)."""

START_TIMEOUT = 15.0
"""Seconds ``start_worker`` waits for the server to list the worker."""


class RunnerError(Exception):
    """A step the runner could not carry out for a reason of its own (an
    unknown worker handle, a worker that never registered); reported as
    ``UNKNOWN``, its message starting with ``runner:``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"runner: {message}")


@dataclass
class _Running:
    worker: chirpy.Worker
    task: asyncio.Task[None]


Step = Callable[[Args], Awaitable[Any]]


class Steps:
    """The runner's state: one client, the workers by handle, the events."""

    def __init__(self, client: chirpy.AsyncClient) -> None:
        self._client = client
        self._behaviours = Behaviours()
        self._workers: dict[str, _Running] = {}
        self.by_kind: dict[str, Step] = {
            "push": self.push,
            "batch_push": self.batch_push,
            "get": self.get,
            "list": self.list,
            "cancel": self.cancel,
            "retry": self.retry,
            "retry_dead": self.retry_dead,
            "queues": self.queues,
            "workers": self.workers,
            "start_worker": self.start_worker,
            "stop_worker": self.stop_worker,
            "events": self.events,
        }

    # -- client steps ------------------------------------------------------------

    async def push(self, args: Args) -> JSONObject:
        queue = args.string("queue") or ""
        job = shapes.new_job(args)  # checks the remaining arguments
        pushed = await self._client.push(
            queue,
            job.payload,
            scheduled_at=job.scheduled_at,
            priority=job.priority,
            max_attempts=job.max_attempts,
            idempotency_key=job.idempotency_key,
            metadata=job.metadata,
            retry_policy=job.retry_policy,
        )
        return shapes.job(pushed)

    async def batch_push(self, args: Args) -> JSONObject:
        queue = args.string("queue") or ""
        jobs = [shapes.new_job(item) for item in args.nested_list("jobs") or []]
        args.done()
        return {"jobs": shapes.jobs(await self._client.batch_push(queue, jobs))}

    async def get(self, args: Args) -> JSONObject:
        queue, job_id = _job_ref(args)
        return shapes.job(await self._client.get(queue, job_id))

    async def list(self, args: Args) -> JSONObject:
        queue = args.string("queue") or ""
        state = args.string("state")
        page_size = args.integer("page_size")
        page_token = args.string("page_token")
        args.done()
        if page_size is None:  # the SDK's default page size, as a user gets it
            page = await self._client.list_page(queue, state=state, page_token=page_token)
        else:
            page = await self._client.list_page(queue, state=state, page_size=page_size, page_token=page_token)
        return {"jobs": shapes.jobs(page.jobs), "next_page_token": page.next_page_token or ""}

    async def cancel(self, args: Args) -> JSONObject:
        queue, job_id = _job_ref(args)
        return shapes.job(await self._client.cancel(queue, job_id))

    async def retry(self, args: Args) -> JSONObject:
        queue, job_id = _job_ref(args)
        return shapes.job(await self._client.retry(queue, job_id))

    async def retry_dead(self, args: Args) -> JSONObject:
        queue = args.string("queue") or ""
        ids = args.strings("ids")
        args.done()
        return {"ids": await self._client.retry_dead(queue, ids)}

    async def queues(self, args: Args) -> JSONObject:
        args.done()
        return {"queues": [shapes.queue(q) for q in await self._client.queues()]}

    async def workers(self, args: Args) -> JSONObject:
        args.done()
        return {"workers": [shapes.worker(w) for w in await self._client.workers()]}

    # -- worker steps ------------------------------------------------------------

    async def start_worker(self, args: Args) -> JSONObject:
        """Starts a `chirpy.Worker` and returns once the server lists it
        (its first heartbeat registered it), or with the error that ended
        it (an invalid queue name, say)."""
        handle = _handle(args)
        queue = args.string("queue") or ""
        concurrency = args.integer("concurrency")
        args.done()
        running = self._workers.get(handle)
        if running is not None and not running.task.done():
            raise RunnerError(f"worker {handle!r} is already running")
        worker = chirpy.Worker(
            self._client,
            queue,
            self._behaviours.handler(handle),
            concurrency=DEFAULT_CONCURRENCY if concurrency is None else concurrency,
        )
        task = asyncio.create_task(worker.run(), name=f"worker-{handle}")
        task.add_done_callback(lambda t: _log_end(handle, t))
        self._workers[handle] = _Running(worker, task)
        await self._until_listed(handle, worker, task)
        return {}

    async def _until_listed(self, handle: str, worker: chirpy.Worker, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if task.done():
                del self._workers[handle]
                task.result()  # raises the error that ended it
                raise RunnerError(f"worker {handle!r} stopped before it was running")
            try:
                listed = await self._client.workers()
            except chirpy.ChirpyError as error:
                logger.warning("cannot list workers (%s); trying again", error)
                listed = []
            if any(w.id == worker.worker_id for w in listed):
                return
            if loop.time() > deadline:
                worker.stop()
                await asyncio.gather(task, return_exceptions=True)
                del self._workers[handle]
                raise RunnerError(f"worker {handle!r} was not listed by the server within {START_TIMEOUT:g}s")
            await asyncio.wait({task}, timeout=0.05)

    async def stop_worker(self, args: Args) -> JSONObject:
        """Stops a worker gracefully (`chirpy.Worker.stop`): returns once its
        running handlers finished and their outcomes were sent."""
        handle = _handle(args)
        args.done()
        running = self._workers.pop(handle, None)
        if running is None:
            raise RunnerError(f"no worker {handle!r}")
        running.worker.stop()
        await running.task  # raises the error that ended it, if one did
        return {}

    async def events(self, args: Args) -> JSONObject:
        args.done()
        return {"events": self._behaviours.events()}

    async def stop_all(self, grace: float) -> None:
        """Stops every worker gracefully, at once, and waits for them; after
        ``grace`` seconds, cancels those whose handlers still run (the SDK
        then cancels the handlers at once)."""
        running = list(self._workers.values())
        self._workers.clear()
        for item in running:
            item.worker.stop()
        tasks = [item.task for item in running]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            logger.warning("%d worker(s) still running handlers after %gs; cancelling them", len(pending), grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _job_ref(args: Args) -> tuple[str, str]:
    queue = args.string("queue") or ""
    job_id = args.string("id") or ""
    args.done()
    return queue, job_id


def _handle(args: Args) -> str:
    handle = args.string("worker")
    if handle is None:
        raise Unexpressible("worker: a handle is required")
    return handle


def _log_end(handle: str, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        logger.info("worker %s cancelled", handle)
    elif task.exception() is not None:
        logger.error("worker %s ended with an error: %s", handle, task.exception())
    else:
        logger.info("worker %s stopped", handle)
