"""`Client` (blocking) against the live server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
import pytest

import chirpy
from chirpy import Client, JobState, NewJob, RetryPolicy


def test_push_and_get_round_trip(client: Client, queue: str) -> None:
    payload = {"to": "user@example.com", "n": 3, "ratio": 0.5, "tags": ["a", None, True], "nested": {"x": {}}}
    job = client.push(
        queue,
        payload,
        priority=4,
        max_attempts=7,
        metadata={"tenant": "acme"},
        retry_policy=RetryPolicy(initial_backoff=2, max_backoff=timedelta(minutes=1)),
    )
    assert len(job.id) == 26
    assert job.queue == queue
    assert job.payload == payload
    assert isinstance(job.payload["n"], int)
    assert job.state is JobState.PENDING
    assert (job.priority, job.attempts, job.max_attempts) == (4, 0, 7)
    assert job.metadata == {"tenant": "acme"}
    assert job.retry_policy == RetryPolicy(timedelta(seconds=2), timedelta(minutes=1))
    assert job.created_at.tzinfo is timezone.utc
    assert abs(job.created_at - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert job.started_at is None and job.finished_at is None and job.lease is None
    assert job.last_error is None and job.idempotency_key is None
    assert not job.deduplicated
    assert job.raw.id == job.id

    fetched = client.get(queue, job.id)
    assert fetched == job


@pytest.mark.parametrize("payload", [None, 0, -1.25, "text", True, [], {}, [1, [2, [3]]]])
def test_any_json_value_is_a_payload(client: Client, queue: str, payload: object) -> None:
    assert client.push(queue, payload).payload == payload


def test_defaults_and_scheduling(client: Client, queue: str) -> None:
    now = client.push(queue, {})
    assert now.max_attempts == 25
    assert now.retry_policy is None
    later = client.push(queue, {}, scheduled_at=timedelta(hours=1))
    assert later.state is JobState.SCHEDULED
    assert later.scheduled_at > datetime.now(timezone.utc) + timedelta(minutes=59)
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert client.push(queue, {}, scheduled_at=at).scheduled_at == at
    # A naive datetime is UTC, as in protobuf.
    assert client.push(queue, {}, scheduled_at=at.replace(tzinfo=None)).scheduled_at == at


def test_idempotency_returns_the_existing_job(client: Client, queue: str) -> None:
    first = client.push(queue, {"v": 1}, idempotency_key="welcome-42")
    again = client.push(queue, {"v": 2}, idempotency_key="welcome-42")
    assert not first.deduplicated
    assert again.deduplicated
    assert again.id == first.id
    assert again.payload == {"v": 1}
    assert again.idempotency_key == "welcome-42"
    assert [j.id for j in client.list(queue)] == [first.id]


def test_batch_push(client: Client, queue: str) -> None:
    existing = client.push(queue, "old", idempotency_key="k")
    jobs = client.batch_push(
        queue,
        [
            {"i": 0},
            NewJob({"i": 1}, priority=9, metadata={"m": "1"}),
            NewJob("dup", idempotency_key="k"),
            NewJob({"i": 3}, scheduled_at=timedelta(minutes=5)),
        ],
    )
    assert [j.payload for j in jobs] == [{"i": 0}, {"i": 1}, "old", {"i": 3}]
    assert [j.deduplicated for j in jobs] == [False, False, True, False]
    assert jobs[1].priority == 9 and jobs[1].metadata == {"m": "1"}
    assert jobs[2].id == existing.id
    assert jobs[3].state is JobState.SCHEDULED


def test_batch_push_is_all_or_nothing(client: Client, queue: str) -> None:
    with pytest.raises(chirpy.InvalidArgument) as caught:
        client.batch_push(queue, [{"ok": 1}, NewJob({}, max_attempts=5000)])
    assert caught.value.field is not None and "max_attempts" in caught.value.field
    assert list(client.list(queue)) == []


def test_list_pages_and_iteration(client: Client, queue: str) -> None:
    pushed = client.batch_push(queue, [{"i": i} for i in range(7)])
    first = client.list_page(queue, page_size=3)
    assert [j.id for j in first.jobs] == [j.id for j in pushed[:3]]
    assert first.next_page_token is not None
    second = client.list_page(queue, page_size=3, page_token=first.next_page_token)
    assert [j.id for j in second.jobs] == [j.id for j in pushed[3:6]]
    # Every job, oldest first, fetched three at a time.
    assert [j.id for j in client.list(queue, page_size=3)] == [j.id for j in pushed]
    last = client.list_page(queue, page_size=100)
    assert last.next_page_token is None and len(last.jobs) == 7


def test_list_by_state(client: Client, queue: str) -> None:
    pending = client.push(queue, 1)
    canceled = client.push(queue, 2)
    client.cancel(queue, canceled.id)
    assert [j.id for j in client.list(queue, state=JobState.PENDING)] == [pending.id]
    assert [j.id for j in client.list(queue, state="canceled")] == [canceled.id]
    assert [j.id for j in client.list(queue, state="JOB_STATE_CANCELED")] == [canceled.id]
    with pytest.raises(ValueError):
        client.list_page(queue, state="nope")


def test_cancel(client: Client, queue: str) -> None:
    job = client.push(queue, {})
    canceled = client.cancel(queue, job.id)
    assert canceled.state is JobState.CANCELED
    assert canceled.finished_at is not None
    with pytest.raises(chirpy.FailedPrecondition) as caught:
        client.cancel(queue, job.id)
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION


def test_retry_needs_a_dead_job(client: Client, queue: str) -> None:
    job = client.push(queue, {})
    with pytest.raises(chirpy.FailedPrecondition):
        client.retry(queue, job.id)
    assert client.retry_dead(queue) == []


def test_errors_carry_code_message_and_field(client: Client, queue: str) -> None:
    with pytest.raises(chirpy.NotFound) as not_found:
        client.get(queue, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert not_found.value.code is grpc.StatusCode.NOT_FOUND
    assert "not found" in not_found.value.message
    assert not_found.value.field is None

    with pytest.raises(chirpy.InvalidArgument) as bad_queue:
        client.push("no spaces", {})
    error = bad_queue.value
    assert isinstance(error, chirpy.ChirpyError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.field == "queue"
    assert error.message.startswith("queue:")
    assert str(error).startswith("INVALID_ARGUMENT: queue:")
    assert error.status is not None and error.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert isinstance(error.__cause__, grpc.RpcError)

    with pytest.raises(chirpy.InvalidArgument) as reserved:
        client.push(queue, {}, metadata={"chirpy.secret": "x"})
    assert reserved.value.field == "metadata"
    assert [v.field for v in reserved.value.field_violations] == ["metadata"]

    with pytest.raises(chirpy.InvalidArgument) as negative:
        client.push(queue, {}, priority=-1)
    assert negative.value.field == "priority"


def test_arguments_checked_before_calling(client: Client, queue: str) -> None:
    with pytest.raises(TypeError):
        client.push(queue, {1, 2})
    with pytest.raises(TypeError):
        client.push(queue, {1: "int key"})
    with pytest.raises(ValueError):
        client.push(queue, float("nan"))
    with pytest.raises(ValueError):
        client.push(queue, 2**60)
    assert list(client.list(queue)) == []


def test_queues_count_states(client: Client, queue: str) -> None:
    client.batch_push(queue, [1, 2, NewJob(3, scheduled_at=timedelta(hours=1))])
    client.cancel(queue, client.push(queue, 4).id)
    (counts,) = [q for q in client.queues() if q.name == queue]
    assert (counts.pending, counts.scheduled, counts.canceled, counts.dead) == (2, 1, 1, 0)
    assert counts.total == 4


def test_unreachable_server_is_unavailable() -> None:
    with Client("http://127.0.0.1:9", timeout=5) as client:
        with pytest.raises(chirpy.Unavailable) as caught:
            client.get("q", "x")
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_urls() -> None:
    from chirpy._channel import Target, parse

    assert parse("http://localhost:7000") == Target("localhost:7000", tls=False)
    assert parse("http://localhost:7000/") == Target("localhost:7000", tls=False)
    assert parse("https://chirpy.example.com") == Target("chirpy.example.com:443", tls=True)
    assert parse("http://[::1]:7000") == Target("[::1]:7000", tls=False)
    assert parse("127.0.0.1:7000") == Target("127.0.0.1:7000", tls=False)
    assert parse("dns:///chirpy:7000") == Target("dns:///chirpy:7000", tls=False)
    with pytest.raises(ValueError):
        parse("http://localhost:7000/v1")
    with pytest.raises(ValueError):
        parse("ftp://localhost")
