"""`AsyncClient` against the live server: the same calls as `Client`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

import chirpy
from chirpy import AsyncClient, JobState, NewJob


async def test_push_get_cancel(aclient: AsyncClient, queue: str) -> None:
    job = await aclient.push(queue, {"to": "user@example.com"}, priority=2, metadata={"k": "v"})
    assert job.state is JobState.PENDING and job.priority == 2
    assert await aclient.get(queue, job.id) == job
    canceled = await aclient.cancel(queue, job.id)
    assert canceled.state is JobState.CANCELED
    with pytest.raises(chirpy.FailedPrecondition):
        await aclient.cancel(queue, job.id)


async def test_idempotency_and_batch(aclient: AsyncClient, queue: str) -> None:
    first = await aclient.push(queue, 1, idempotency_key="once")
    again = await aclient.push(queue, 2, idempotency_key="once")
    assert again.deduplicated and again.id == first.id
    jobs = await aclient.batch_push(queue, [NewJob(3, idempotency_key="once"), 4])
    assert [j.deduplicated for j in jobs] == [True, False]
    assert jobs[0].id == first.id


async def test_list_pages_and_async_iteration(aclient: AsyncClient, queue: str) -> None:
    pushed = await aclient.batch_push(queue, list(range(5)))
    page = await aclient.list_page(queue, page_size=2)
    assert [j.payload for j in page.jobs] == [0, 1] and page.next_page_token
    assert [j.id async for j in aclient.list(queue, page_size=2)] == [j.id for j in pushed]
    await aclient.cancel(queue, pushed[0].id)
    assert [j.payload async for j in aclient.list(queue, state=JobState.CANCELED)] == [0]


async def test_errors(aclient: AsyncClient, queue: str) -> None:
    with pytest.raises(chirpy.NotFound):
        await aclient.get(queue, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(chirpy.InvalidArgument) as caught:
        await aclient.push(queue, {}, max_attempts=1001)
    assert caught.value.field == "max_attempts"
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(chirpy.FailedPrecondition):
        await aclient.retry(queue, (await aclient.push(queue, {})).id)


async def test_queues_and_concurrent_calls(aclient: AsyncClient, queue: str) -> None:
    await asyncio.gather(*(aclient.push(queue, i) for i in range(20)))
    await aclient.push(queue, "later", scheduled_at=timedelta(hours=2))
    (counts,) = [q for q in await aclient.queues() if q.name == queue]
    assert (counts.pending, counts.scheduled) == (20, 1)
    assert await aclient.retry_dead(queue) == []
