"""The resources Chirpy manages, as plain Python values: `Job` (with
`JobState`, `Lease`, `RetryPolicy`), `JobPage`, `Queue` and `WorkerInfo`.

Each is a frozen dataclass built from its protobuf message (``from_proto``)
and keeps that message as ``raw`` for fields this layer does not surface.
Requests are built elsewhere (`chirpy._requests`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from chirpy import _wellknown
from chirpy._wellknown import JSON, Seconds
from chirpy.v1 import job_pb2


class JobState(enum.IntEnum):
    """Where a job is in its life cycle (``chirpy.v1.JobState``, without the
    ``JOB_STATE_`` prefix). The values are the proto's numbers."""

    UNSPECIFIED = 0
    """Not a state; as a filter it means any state."""
    PENDING = 1
    """Ready to run, waiting for a worker."""
    SCHEDULED = 2
    """Waiting for its ``scheduled_at``: pushed for later, or backing off
    before a retry."""
    RUNNING = 3
    """Leased to a worker."""
    SUCCEEDED = 4
    """Finished successfully; ``result`` holds what the worker returned."""
    DEAD = 5
    """The failure queue: attempts used up, or failed as non-retryable."""
    CANCELED = 6
    """Canceled before it finished."""

    @property
    def finished(self) -> bool:
        """True for the final states: succeeded, dead, canceled."""
        return self in (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELED)

    @classmethod
    def parse(cls, state: JobState | str | int) -> JobState:
        """A state from itself, its name (``"DEAD"``, ``"dead"``,
        ``"JOB_STATE_DEAD"``) or its number."""
        if isinstance(state, JobState):
            return state
        if isinstance(state, str):
            name = state.upper().removeprefix("JOB_STATE_")
            try:
                return cls[name]
            except KeyError:
                raise ValueError(f"unknown job state {state!r}") from None
        return cls(state)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts: the n-th retry waits about
    ``initial_backoff * 2**(n-1)``, at most ``max_backoff``, with jitter.

    Either field accepts seconds or a ``timedelta``; the server requires
    ``initial_backoff`` of at least one second and ``max_backoff`` of at
    most 30 days and no less than ``initial_backoff``.
    """

    initial_backoff: Seconds
    max_backoff: Seconds

    def to_proto(self) -> job_pb2.RetryPolicy:
        """The ``chirpy.v1.RetryPolicy`` message."""
        return job_pb2.RetryPolicy(
            initial_backoff=_wellknown.to_duration(self.initial_backoff),
            max_backoff=_wellknown.to_duration(self.max_backoff),
        )

    @classmethod
    def from_proto(cls, message: job_pb2.RetryPolicy) -> RetryPolicy:
        """The policy of a ``chirpy.v1.RetryPolicy``, as ``timedelta``s."""
        return cls(
            initial_backoff=_wellknown.from_duration(message.initial_backoff),
            max_backoff=_wellknown.from_duration(message.max_backoff),
        )


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a running job."""

    worker_id: str
    """The worker that holds it."""
    expires_at: datetime
    """When it lapses unless renewed (UTC)."""


@dataclass(frozen=True)
class Job:
    """A job, as the server returned it.

    Timestamps are aware ``datetime``s in UTC. Optional strings the proto
    leaves empty (``last_error``, ``idempotency_key``) are ``None``.
    """

    id: str
    """Server-assigned ULID."""
    queue: str
    """The queue it belongs to."""
    payload: JSON
    """Its arguments: the JSON value pushed."""
    state: JobState
    """Where it is in its life cycle."""
    priority: int
    """Higher runs first within a queue."""
    attempts: int
    """Attempts started so far, a running one included."""
    max_attempts: int
    """Attempts it gets before it is ``DEAD``."""
    scheduled_at: datetime
    """When it becomes ready to run (its next attempt, for a retry)."""
    created_at: datetime
    """When it was pushed."""
    started_at: Optional[datetime]
    """When its latest attempt was handed to a worker, if any."""
    finished_at: Optional[datetime]
    """When it reached a final state, if it has."""
    last_error: Optional[str]
    """The error of its latest failed attempt, if any."""
    result: JSON
    """What the worker returned, once ``SUCCEEDED``; otherwise ``None``."""
    metadata: dict[str, str]
    """Free-form string pairs of the producer and the worker."""
    idempotency_key: Optional[str]
    """The key that deduplicates pushes to its queue, if it was given one."""
    lease: Optional[Lease]
    """The current lease while ``RUNNING`` on a Chirpy worker."""
    retry_policy: Optional[RetryPolicy]
    """Its own backoff between attempts; ``None`` means the server's."""
    deduplicated: bool = field(default=False, compare=False)
    """True when a push matched an existing job by ``idempotency_key`` and
    returned it instead of creating one. False for jobs from other calls."""
    raw: job_pb2.Job = field(default_factory=job_pb2.Job, compare=False, repr=False)
    """The ``chirpy.v1.Job`` message this was built from."""

    @classmethod
    def from_proto(cls, message: job_pb2.Job, *, deduplicated: bool = False) -> Job:
        """The job of a ``chirpy.v1.Job`` message."""
        return cls(
            id=message.id,
            queue=message.queue,
            payload=_wellknown.from_value(message.payload),
            state=_state(message.state),
            priority=message.priority,
            attempts=message.attempts,
            max_attempts=message.max_attempts,
            scheduled_at=_wellknown.from_timestamp(message.scheduled_at),
            created_at=_wellknown.from_timestamp(message.created_at),
            started_at=(
                _wellknown.from_timestamp(message.started_at) if message.HasField("started_at") else None
            ),
            finished_at=(
                _wellknown.from_timestamp(message.finished_at) if message.HasField("finished_at") else None
            ),
            last_error=message.last_error or None,
            result=_wellknown.from_value(message.result),
            metadata=dict(message.metadata),
            idempotency_key=message.idempotency_key or None,
            lease=(
                Lease(message.lease.worker_id, _wellknown.from_timestamp(message.lease.expires_at))
                if message.HasField("lease")
                else None
            ),
            retry_policy=(
                RetryPolicy.from_proto(message.retry_policy) if message.HasField("retry_policy") else None
            ),
            deduplicated=deduplicated,
            raw=message,
        )


def _state(number: int) -> JobState:
    try:
        return JobState(number)
    except ValueError:
        # A state added to the proto after this SDK was built.
        return JobState.UNSPECIFIED


@dataclass(frozen=True)
class JobPage:
    """One page of a listing, oldest job first."""

    jobs: list[Job]
    """The jobs of this page."""
    next_page_token: Optional[str]
    """Pass as ``page_token`` for the next page; ``None`` on the last."""


@dataclass(frozen=True)
class Queue:
    """A queue and how many of its jobs are in each state."""

    name: str
    pending: int
    scheduled: int
    running: int
    succeeded: int
    dead: int
    canceled: int
    raw: job_pb2.Queue = field(default_factory=job_pb2.Queue, compare=False, repr=False)
    """The ``chirpy.v1.Queue`` message this was built from."""

    @property
    def total(self) -> int:
        """Jobs in every state."""
        return self.pending + self.scheduled + self.running + self.succeeded + self.dead + self.canceled

    @classmethod
    def from_proto(cls, message: job_pb2.Queue) -> Queue:
        """The queue of a ``chirpy.v1.Queue`` message."""
        return cls(
            name=message.name,
            pending=message.pending,
            scheduled=message.scheduled,
            running=message.running,
            succeeded=message.succeeded,
            dead=message.dead,
            canceled=message.canceled,
            raw=message,
        )


@dataclass(frozen=True)
class WorkerInfo:
    """A worker the server heard from recently: a remote Chirpy worker (in
    any language) or an embedded Apalis worker on the same storage."""

    id: str
    """Its self-chosen id."""
    queues: list[str]
    """The queues it works."""
    kind: str
    """``chirpy`` for remote workers, the Apalis storage otherwise."""
    started_at: Optional[datetime]
    """When it first registered."""
    last_heartbeat_at: Optional[datetime]
    """When it was last heard from."""
    running_jobs: int
    """How many jobs it runs now."""
    raw: job_pb2.Worker = field(default_factory=job_pb2.Worker, compare=False, repr=False)
    """The ``chirpy.v1.Worker`` message this was built from."""

    @classmethod
    def from_proto(cls, message: job_pb2.Worker) -> WorkerInfo:
        """The worker of a ``chirpy.v1.Worker`` message."""
        return cls(
            id=message.id,
            queues=list(message.queues),
            kind=message.kind,
            started_at=(
                _wellknown.from_timestamp(message.started_at) if message.HasField("started_at") else None
            ),
            last_heartbeat_at=(
                _wellknown.from_timestamp(message.last_heartbeat_at)
                if message.HasField("last_heartbeat_at")
                else None
            ),
            running_jobs=message.running_jobs,
            raw=message,
        )


__all__ = ["Job", "JobPage", "JobState", "Lease", "Queue", "RetryPolicy", "WorkerInfo"]
