"""`Worker` against the live server (3 s lease TTL, so a 1 s heartbeat; 1 s
retry backoff)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from conftest import Server
from google.protobuf import duration_pb2

import chirpy
from chirpy import AsyncClient, Job, JobState, NonRetryable, RetryAfter, Worker
from chirpy.v1 import worker_service_pb2, worker_service_pb2_grpc


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    """Polls ``check`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def states(client: AsyncClient, queue: str) -> list[JobState]:
    return [job.state async for job in client.list(queue)]


def all_in(client: AsyncClient, queue: str, *wanted: JobState) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await states(client, queue)
        return bool(found) and all(s in wanted for s in found)

    return check


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Runs ``worker`` for the block, then stops it and waits for it."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)


async def test_success_records_the_result(aclient: AsyncClient, queue: str) -> None:
    async def double(job: Job) -> Any:
        return {"double": job.payload * 2, "id": job.id}

    pushed = await aclient.batch_push(queue, [1, 2, 3])
    worker = Worker(aclient, queue, double, worker_id=f"{queue}-w1")
    async with running(worker):
        await eventually(all_in(aclient, queue, JobState.SUCCEEDED), what="jobs to succeed")
        listed = await aclient.workers()
        (me,) = [w for w in listed if w.id == worker.worker_id]
        assert me.queues == [queue] and me.kind == "chirpy"
    for job in pushed:
        done = await aclient.get(queue, job.id)
        assert done.result == {"double": job.payload * 2, "id": job.id}
        assert done.attempts == 1
        assert done.finished_at is not None and done.lease is None


async def test_failures_back_off_then_die(aclient: AsyncClient, queue: str) -> None:
    attempts: list[float] = []

    async def flaky(job: Job) -> None:
        attempts.append(time.monotonic())
        raise ValueError(f"boom {len(attempts)}")

    job = await aclient.push(queue, {}, max_attempts=3)
    async with running(Worker(aclient, queue, flaky)):
        await eventually(all_in(aclient, queue, JobState.DEAD), timeout=15, what="the job to die")
    dead = await aclient.get(queue, job.id)
    assert dead.attempts == 3 and len(attempts) == 3
    assert dead.last_error == "boom 3"
    # Each retry waited for the backoff (1 s, with jitter).
    assert all(later - earlier > 0.5 for earlier, later in zip(attempts, attempts[1:]))
    assert await aclient.retry_dead(queue) == [job.id]
    assert (await aclient.get(queue, job.id)).state is JobState.PENDING


async def test_non_retryable_goes_straight_to_the_failure_queue(aclient: AsyncClient, queue: str) -> None:
    async def reject(job: Job) -> None:
        raise NonRetryable("no such user")

    job = await aclient.push(queue, {}, max_attempts=10)
    async with running(Worker(aclient, queue, reject)):
        await eventually(all_in(aclient, queue, JobState.DEAD), what="the job to die")
    dead = await aclient.get(queue, job.id)
    assert dead.attempts == 1
    assert dead.last_error == "no such user"


async def test_retry_after_sets_the_next_attempt(aclient: AsyncClient, queue: str) -> None:
    failed_at: list[datetime] = []

    async def busy(job: Job) -> None:
        failed_at.append(datetime.now(timezone.utc))
        raise RetryAfter(timedelta(seconds=30), "rate limited")

    job = await aclient.push(queue, {})
    async with running(Worker(aclient, queue, busy)):
        await eventually(all_in(aclient, queue, JobState.SCHEDULED), what="the job to be rescheduled")
    scheduled = await aclient.get(queue, job.id)
    assert scheduled.last_error == "rate limited"
    assert scheduled.scheduled_at > failed_at[0] + timedelta(seconds=25)


async def test_last_error_is_the_message_and_the_traceback_is_logged(
    aclient: AsyncClient, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(job: Job) -> None:
        if job.payload == "bare":
            raise KeyError()
        raise ValueError("bad input")

    message, bare = await aclient.batch_push(
        queue, [chirpy.NewJob("message", max_attempts=1), chirpy.NewJob("bare", max_attempts=1)]
    )
    with caplog.at_level(logging.WARNING, logger="chirpy.worker"):
        async with running(Worker(aclient, queue, fail)):
            await eventually(all_in(aclient, queue, JobState.DEAD), what="both jobs to die")
    # The message alone, as every Chirpy SDK reports a failure; the type's
    # name when there is no message.
    assert (await aclient.get(queue, message.id)).last_error == "bad input"
    assert (await aclient.get(queue, bare.id)).last_error == "KeyError"
    assert "Traceback" in caplog.text and "in fail" in caplog.text


async def test_bad_results_and_sync_handlers(aclient: AsyncClient, queue: str) -> None:
    def handle(job: Job) -> Any:  # a plain function: runs in a thread
        time.sleep(0.05)
        return job.payload if job.payload != "bad" else {"not json": {1, 2}}

    good, bad = await aclient.batch_push(queue, [NewJobs.good, chirpy.NewJob("bad", max_attempts=1)])
    async with running(Worker(aclient, queue, handle)):
        await eventually(all_in(aclient, queue, JobState.SUCCEEDED, JobState.DEAD), what="both jobs to finish")
    assert (await aclient.get(queue, good.id)).result == NewJobs.good
    failed = await aclient.get(queue, bad.id)
    assert failed.state is JobState.DEAD
    assert failed.last_error is not None and "not JSON" in failed.last_error


class NewJobs:
    good = {"a": [1, 2]}


async def test_cancel_reaches_the_running_handler(aclient: AsyncClient, queue: str) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def wait_forever(job: Job) -> str:
        if job.payload == "quick":
            return "done"
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    job = await aclient.push(queue, "slow")
    async with running(Worker(aclient, queue, wait_forever)):
        await asyncio.wait_for(started.wait(), 10)
        assert (await aclient.get(queue, job.id)).state is JobState.RUNNING
        await aclient.cancel(queue, job.id)
        # The next heartbeat (every second here) tells the worker.
        await asyncio.wait_for(cancelled.wait(), 5)
        # The worker goes on with other jobs.
        quick = await aclient.push(queue, "quick")

        async def quick_done() -> bool:
            return (await aclient.get(queue, quick.id)).state is JobState.SUCCEEDED

        await eventually(quick_done, what="the next job")
    final = await aclient.get(queue, job.id)
    assert final.state is JobState.CANCELED and final.result is None


class Heartbeats(grpc.aio.UnaryUnaryClientInterceptor):
    """Fails the worker's heartbeats, as a network would, while ``down``."""

    down = False

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        if self.down and name.endswith("/Heartbeat"):
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, details="heartbeats down (test)")
        return await continuation(client_call_details, request)


async def test_a_job_leased_again_stops_the_run_of_the_expired_lease(
    server: Server, aclient: AsyncClient, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chirpy.worker")
    heartbeats = Heartbeats()
    lost = asyncio.Event()
    runs = 0

    async def handle(job: Job) -> str:
        nonlocal runs
        runs += 1
        if runs > 1:
            return f"run {runs}, attempt {job.attempts}"
        try:
            await asyncio.sleep(15)  # not forever, so that a failing test still stops
        except asyncio.CancelledError:
            lost.set()
            raise
        return "first run"

    job = await aclient.push(queue, {})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", interceptors=[heartbeats])
    try:
        # A free slot, so the worker's own long poll takes the job back once
        # its lease expires.
        async with running(Worker(AsyncClient.from_channel(channel), queue, handle, concurrency=2)):
            await eventually(lambda: _true(runs == 1), what="the first run")
            heartbeats.down = True  # the lease (3 s) expires; the reaper makes the job pending
            await eventually(lambda: _true(runs == 2), timeout=10, what="the second run")
            heartbeats.down = False
            await asyncio.wait_for(lost.wait(), 5)
            await eventually(all_in(aclient, queue, JobState.SUCCEEDED), what="the job to succeed")
    finally:
        await channel.close()
    done = await aclient.get(queue, job.id)
    assert (done.result, done.attempts) == ("run 2, attempt 2", 2)
    assert f"job {job.id} was lost on the server; stopping it" in caplog.text


async def test_heartbeats_keep_long_jobs_leased(aclient: AsyncClient, queue: str) -> None:
    async def longer_than_the_lease(job: Job) -> str:
        await asyncio.sleep(4)  # the lease TTL is 3 s
        return "ok"

    job = await aclient.push(queue, {})
    async with running(Worker(aclient, queue, longer_than_the_lease)):
        await eventually(all_in(aclient, queue, JobState.SUCCEEDED), what="the job to succeed")
    done = await aclient.get(queue, job.id)
    assert done.attempts == 1 and done.result == "ok"


async def test_concurrency_limit(aclient: AsyncClient, queue: str) -> None:
    now_running = 0
    most = 0

    async def slow(job: Job) -> None:
        nonlocal now_running, most
        now_running += 1
        most = max(most, now_running)
        await asyncio.sleep(0.3)
        now_running -= 1

    await aclient.batch_push(queue, list(range(8)))
    worker = Worker(aclient, queue, slow, concurrency=3, batch_size=4)
    async with running(worker):
        await eventually(all_in(aclient, queue, JobState.SUCCEEDED), what="jobs to succeed")
    assert most == 3


async def test_leases_no_more_jobs_than_free_slots(aclient: AsyncClient, queue: str) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def hold(job: Job) -> str:
        started.set()
        await finish.wait()
        return "held"

    async def quick(job: Job) -> str:
        return "quick"

    await aclient.batch_push(queue, ["a", "b", "c"])
    one_slot = Worker(aclient, queue, hold, concurrency=1, batch_size=10, worker_id=f"{queue}-one")
    async with running(one_slot):
        try:
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.sleep(0.5)  # time for a stray second lease call
            (counts,) = [q for q in await aclient.queues() if q.name == queue]
            # One handler slot, so one job leased; the rest is left to others.
            assert (counts.running, counts.pending) == (1, 2)
            async with running(Worker(aclient, queue, quick, concurrency=2, worker_id=f"{queue}-two")):

                async def two_done() -> bool:
                    return (await states(aclient, queue)).count(JobState.SUCCEEDED) == 2

                await eventually(two_done, what="the second worker to run the other jobs")
        finally:
            finish.set()
    await eventually(all_in(aclient, queue, JobState.SUCCEEDED), what="the held job to succeed")
    results = sorted([job.result async for job in aclient.list(queue)])
    assert results == ["held", "quick", "quick"]


async def test_graceful_stop_waits_for_running_handlers(aclient: AsyncClient, queue: str) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def hold(job: Job) -> str:
        started.set()
        await finish.wait()
        return "finished"

    first, second, third = await aclient.batch_push(queue, ["a", "b", "c"])
    worker = Worker(aclient, queue, hold, concurrency=1, batch_size=5)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.sleep(0.2)
    assert not task.done(), "run() returned while a handler was running"
    finish.set()
    await asyncio.wait_for(task, 10)

    # Jobs run in the order pushed; one handler slot, so one ran.
    done = await aclient.get(queue, first.id)
    assert done.state is JobState.SUCCEEDED and done.result == "finished"
    for job in (second, third):
        back = await aclient.get(queue, job.id)
        assert back.state is JobState.PENDING
        assert back.attempts == 0


async def test_cancelling_run_is_a_graceful_stop(aclient: AsyncClient, queue: str) -> None:
    started = asyncio.Event()

    async def brief(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "ok"

    first, second = await aclient.batch_push(queue, [1, 2])
    task = asyncio.create_task(Worker(aclient, queue, brief, concurrency=1).run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert (await aclient.get(queue, first.id)).state is JobState.SUCCEEDED
    unstarted = await aclient.get(queue, second.id)
    assert (unstarted.state, unstarted.attempts) == (JobState.PENDING, 0)


async def test_shutdown_timeout_interrupts_handlers(aclient: AsyncClient, queue: str) -> None:
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    job = await aclient.push(queue, {})
    worker = Worker(aclient, queue, stuck, shutdown_timeout=0.2)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.wait_for(task, 10)
    failed = await aclient.get(queue, job.id)
    assert failed.state is JobState.SCHEDULED
    assert failed.last_error is not None and failed.last_error.startswith("interrupted")


async def test_errors_that_retrying_cannot_fix_end_run(aclient: AsyncClient) -> None:
    async def never(job: Job) -> None:
        raise AssertionError("not called")

    with pytest.raises(chirpy.InvalidArgument) as caught:
        await asyncio.wait_for(Worker(aclient, "no spaces", never).run(), 10)
    assert caught.value.field is not None and "queue" in caught.value.field
    with pytest.raises(ValueError):
        Worker(aclient, "q", never, concurrency=0)


async def test_worker_survives_a_server_restart(own_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chirpy.worker")
    started = asyncio.Event()
    finish = asyncio.Event()

    async def handle(job: Job) -> str:
        if job.payload == "before":
            started.set()
            await finish.wait()
        return f"done {job.payload}"

    async with AsyncClient(own_server.url) as client:
        before = await client.push("restart", "before")
        async with running(Worker(client, "restart", handle)):
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.to_thread(own_server.stop)
            # The handler finishes while the server is down: the worker keeps
            # the outcome and reports it once the server is back.
            finish.set()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_server.start)
            # The client's connection is still in its reconnect backoff: a
            # call waits for it rather than failing at once.
            async with AsyncClient(own_server.url, wait_for_ready=True, timeout=10) as producer:
                after = await producer.push("restart", "after")

            async def both_done() -> bool:
                jobs = [await client.get("restart", j.id) for j in (before, after)]
                return all(j.state is JobState.SUCCEEDED for j in jobs)

            await eventually(both_done, timeout=15, what="both jobs to succeed after the restart")
        assert (await client.get("restart", before.id)).result == "done before"
    assert "heartbeats resumed" in caplog.text or "cannot lease jobs" in caplog.text


async def test_quiet_directive_pauses_leasing() -> None:
    """QUIET is sent only while a server drains, a window too short to hit
    reliably on the real one: a stand-in WorkerService says QUIET to the
    first heartbeats, then RUN."""
    events: list[str] = []

    class Servicer(worker_service_pb2_grpc.WorkerServiceServicer):
        async def Heartbeat(  # noqa: N802 (the generated method name)
            self, request: worker_service_pb2.HeartbeatRequest, context: object
        ) -> worker_service_pb2.HeartbeatResponse:
            quiet = events.count("heartbeat") < 3
            events.append("heartbeat")
            return worker_service_pb2.HeartbeatResponse(
                heartbeat_interval=duration_pb2.Duration(nanos=100_000_000),
                directive=(
                    worker_service_pb2.WORKER_DIRECTIVE_QUIET if quiet else worker_service_pb2.WORKER_DIRECTIVE_RUN
                ),
            )

        async def LeaseJobs(  # noqa: N802
            self, request: worker_service_pb2.LeaseJobsRequest, context: object
        ) -> worker_service_pb2.LeaseJobsResponse:
            events.append("lease")
            await asyncio.sleep(0.05)
            return worker_service_pb2.LeaseJobsResponse()

    fake = grpc.aio.server()
    # Only the two calls a quiet worker makes are implemented.
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(Servicer(), fake)  # type: ignore[abstract]
    port = fake.add_insecure_port("127.0.0.1:0")
    await fake.start()
    try:
        async def never(job: Job) -> None:
            raise AssertionError("no job was leased")

        worker = Worker(f"http://127.0.0.1:{port}", "q", never)
        async with running(worker):
            await eventually(lambda: _true(events.count("lease") >= 2), what="leasing to resume")
        # The first three heartbeats said QUIET: no lease before the fourth.
        assert events.index("lease") > 3
        assert events[:3] == ["heartbeat"] * 3
    finally:
        await fake.stop(None)


async def _true(value: bool) -> bool:
    return value
