"""Building JobService requests from Python arguments, shared by `Client`
and `AsyncClient` so that both check and convert arguments the same way.
Also `NewJob`, a job to push in a batch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional, Union

from chirpy import _wellknown
from chirpy._wellknown import JSON
from chirpy.resources import JobState, RetryPolicy
from chirpy.v1 import job_pb2, job_service_pb2

Schedule = Union[datetime, timedelta]
"""When a job may run: a ``datetime`` (naive ones are UTC), or a
``timedelta`` from now."""


@dataclass(frozen=True)
class NewJob:
    """A job to push with `Client.batch_push`, with the same options as
    `Client.push`. A batch may mix ``NewJob``s and bare payloads."""

    payload: JSON
    """The job's arguments: any JSON value."""
    scheduled_at: Optional[Schedule] = None
    """When it may run; ``None`` or in the past means now."""
    priority: int = 0
    """Higher runs first; zero or more."""
    max_attempts: int = 0
    """Attempts before it is dead, 1 to 1000; 0 means the server's default
    (25)."""
    idempotency_key: Optional[str] = None
    """Deduplicates pushes within the queue."""
    metadata: Optional[Mapping[str, str]] = field(default=None)
    """Free-form string pairs (keys not starting with ``chirpy.``)."""
    retry_policy: Optional[RetryPolicy] = None
    """Its own backoff between attempts; ``None`` means the server's."""


def push(queue: str, job: NewJob) -> job_service_pb2.PushJobRequest:
    """The ``PushJobRequest`` of ``job`` for ``queue``."""
    request = job_service_pb2.PushJobRequest(
        queue=queue,
        payload=_wellknown.to_value(job.payload),
        priority=job.priority,
        max_attempts=job.max_attempts,
        idempotency_key=job.idempotency_key or "",
        metadata=dict(job.metadata or {}),
    )
    if job.scheduled_at is not None:
        request.scheduled_at.CopyFrom(_wellknown.to_timestamp(job.scheduled_at))
    if job.retry_policy is not None:
        request.retry_policy.CopyFrom(job.retry_policy.to_proto())
    return request


def batch_push(queue: str, jobs: Iterable[JSON | NewJob]) -> job_service_pb2.BatchPushJobsRequest:
    """The ``BatchPushJobsRequest`` of ``jobs``: ``NewJob``s, or payloads
    pushed with the default options."""
    items = [push("", job if isinstance(job, NewJob) else NewJob(job)) for job in jobs]
    return job_service_pb2.BatchPushJobsRequest(queue=queue, jobs=items)


def list_jobs(
    queue: str,
    state: JobState | str | None,
    page_size: int,
    page_token: Optional[str],
) -> job_service_pb2.ListJobsRequest:
    """The ``ListJobsRequest`` of one page."""
    return job_service_pb2.ListJobsRequest(
        queue=queue,
        state=job_pb2.JobState.ValueType(JobState.parse(state).value if state is not None else 0),
        page_size=page_size,
        page_token=page_token or "",
    )
