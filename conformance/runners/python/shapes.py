"""The protocol's values and the SDK's, both ways.

Reading: a step's ``args`` (JSON) into the arguments of the SDK's methods;
an argument the SDK's types cannot express (a string where a number goes, a
timestamp that is not RFC 3339) raises `Unexpressible`, which the runner
reports as ``unsupported``. Writing: `chirpy.Job`, `chirpy.Queue` and
`chirpy.WorkerInfo` in the protocol's shapes (conformance/README.md).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import chirpy

JSONObject = dict[str, Any]
"""A JSON object, as ``json.loads`` returns it."""


class Unexpressible(Exception):
    """A step the runner cannot turn into a call of the SDK: an unknown
    argument, or one of a type the SDK's method does not take."""


# -- reading arguments ---------------------------------------------------------


class Args:
    """The arguments of one step. Each is read once; `done` then refuses
    any that were not (the runner would silently ignore them otherwise). A
    missing or null argument is ``None``."""

    def __init__(self, kind: str, args: Any) -> None:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise Unexpressible(f"{kind}: args must be an object, got {_show(args)}")
        self._kind = kind
        self._args: JSONObject = args
        self._read: set[str] = set()

    def raw(self, key: str) -> Any:
        """The argument as JSON, unchecked."""
        self._read.add(key)
        return self._args.get(key)

    def string(self, key: str) -> Optional[str]:
        value = self.raw(key)
        if value is None or isinstance(value, str):
            return value
        raise self._wrong(key, "a string", value)

    def integer(self, key: str) -> Optional[int]:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._wrong(key, "an integer", value)

    def strings(self, key: str) -> Optional[list[str]]:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise self._wrong(key, "a list of strings", value)

    def string_map(self, key: str) -> Optional[dict[str, str]]:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
            return value
        raise self._wrong(key, "an object of strings", value)

    def nested(self, key: str) -> Optional[Args]:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, dict):
            return Args(f"{self._kind}.{key}", value)
        raise self._wrong(key, "an object", value)

    def nested_list(self, key: str) -> Optional[list[Args]]:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return [Args(f"{self._kind}.{key}[{index}]", item) for index, item in enumerate(value)]
        raise self._wrong(key, "a list of objects", value)

    def timestamp(self, key: str) -> Optional[datetime]:
        text = self.string(key)
        if text is None:
            return None
        moment = parse_rfc3339(text)
        if moment is None:
            raise self._wrong(key, "an RFC 3339 timestamp", text)
        return moment

    def done(self) -> None:
        """Refuses the arguments no one read."""
        unknown = sorted(set(self._args) - self._read)
        if unknown:
            raise Unexpressible(f"{self._kind}: unknown argument(s) {', '.join(unknown)}")

    def _wrong(self, key: str, want: str, value: Any) -> Unexpressible:
        return Unexpressible(f"{self._kind}.{key}: want {want}, got {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))\Z"
)


def parse_rfc3339(text: str) -> Optional[datetime]:
    """An aware ``datetime`` of an RFC 3339 timestamp (digits beyond
    microseconds dropped), or ``None`` for anything else."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    if zulu:
        zone = timezone.utc
    else:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        zone = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # a leap second, as protobuf's Timestamp smears it
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:
        return None


def new_job(args: Args) -> chirpy.NewJob:
    """A job to push, from the push arguments other than ``queue``: the
    SDK's defaults for those left out."""
    backoff = args.nested("backoff")
    retry_policy: Optional[chirpy.RetryPolicy] = None
    if backoff is not None:
        initial_ms = backoff.integer("initial_ms")
        max_ms = backoff.integer("max_ms")
        backoff.done()
        retry_policy = chirpy.RetryPolicy(
            initial_backoff=timedelta(milliseconds=initial_ms or 0),
            max_backoff=timedelta(milliseconds=max_ms or 0),
        )
    job = chirpy.NewJob(
        payload=args.raw("payload"),
        scheduled_at=args.timestamp("scheduled_at"),
        priority=args.integer("priority") or 0,
        max_attempts=args.integer("max_attempts") or 0,
        idempotency_key=args.string("idempotency_key"),
        metadata=args.string_map("metadata"),
        retry_policy=retry_policy,
    )
    args.done()
    return job


# -- writing results -------------------------------------------------------------


def timestamp(moment: Optional[datetime]) -> Optional[str]:
    """RFC 3339 in UTC with microseconds, or ``None``."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def job(job: chirpy.Job) -> JSONObject:
    """The protocol's Job object."""
    return {
        "id": job.id,
        "queue": job.queue,
        "state": job.state.name,
        "payload": job.payload,
        "result": job.result,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "metadata": dict(job.metadata),
        "idempotency_key": job.idempotency_key or "",
        "last_error": job.last_error or "",
        "scheduled_at": timestamp(job.scheduled_at),
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "worker_id": job.lease.worker_id if job.lease is not None else None,
    }


def jobs(jobs: list[chirpy.Job]) -> list[JSONObject]:
    return [job(j) for j in jobs]


def queue(queue: chirpy.Queue) -> JSONObject:
    return {
        "name": queue.name,
        "pending": queue.pending,
        "scheduled": queue.scheduled,
        "running": queue.running,
        "succeeded": queue.succeeded,
        "dead": queue.dead,
        "canceled": queue.canceled,
    }


def worker(worker: chirpy.WorkerInfo) -> JSONObject:
    return {"id": worker.id, "queues": list(worker.queues), "running_jobs": worker.running_jobs}
