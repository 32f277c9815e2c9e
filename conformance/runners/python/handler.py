"""The runner's one handler, and the events it records.

Every worker runs `Behaviours.handler(name)`: an ``async def`` handler (the
SDK's natural form for `chirpy.Worker`) that does what the job's payload
says in its ``do`` field, and records an event when it begins and one when
it ends:

- ``started``, with ``job.attempts`` as the attempt: the SDK hands the
  handler the job as leased, its ``attempts`` counting the running one (1 on
  the first run);
- ``succeeded`` when it returns a result;
- ``failed`` when it raises: a ``RuntimeError`` for a retryable failure
  (``fail``, ``fail_until``, an ``await_cancel`` never canceled),
  `chirpy.NonRetryable` for a permanent one (``fail_permanently``, an
  unknown ``do``);
- ``canceled`` when the SDK cancels it, which is how the SDK tells a handler
  that its job was canceled on the server or its lease lost: an
  ``asyncio.CancelledError`` inside it. The handler re-raises it, as the SDK
  expects (the SDK then drops the job's outcome).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import chirpy
from shapes import JSONObject

DEFAULT_AWAIT_CANCEL_MS = 30_000
"""How long ``await_cancel`` waits when its payload gives no ``ms``."""


class Behaviours:
    """The handler's behaviours and the events of every handler so far."""

    def __init__(self) -> None:
        self._events: list[JSONObject] = []

    def events(self) -> list[JSONObject]:
        """Everything every handler did so far, in order."""
        return list(self._events)

    def handler(self, worker: str) -> Callable[[chirpy.Job], Awaitable[Any]]:
        """The handler for the worker the protocol calls ``worker``."""

        async def handle(job: chirpy.Job) -> Any:
            attempt = job.attempts

            def record(event: str) -> None:
                self._events.append({"worker": worker, "job": job.id, "attempt": attempt, "event": event})

            record("started")
            try:
                result = await _behave(job)
            except asyncio.CancelledError:
                record("canceled")
                raise
            except Exception:
                record("failed")
                raise
            record("succeeded")
            return result

        return handle


async def _behave(job: chirpy.Job) -> Any:
    """Does what ``job.payload["do"]`` says."""
    payload: JSONObject = job.payload if isinstance(job.payload, dict) else {}
    do = payload.get("do", "succeed")
    if do == "succeed":
        return payload.get("result")
    if do == "fail":
        raise RuntimeError(_message(payload))
    if do == "fail_permanently":
        raise chirpy.NonRetryable(_message(payload))
    if do == "fail_until":
        if job.attempts < _number(payload, "attempt", 0):
            raise RuntimeError(_message(payload))
        return payload.get("result")
    if do == "sleep":
        await asyncio.sleep(_number(payload, "ms", 0) / 1000)
        return payload.get("result")
    if do == "await_cancel":
        ms = _number(payload, "ms", DEFAULT_AWAIT_CANCEL_MS)
        # The SDK cancels this sleep (CancelledError) when the job is canceled
        # on the server or its lease is lost.
        await asyncio.sleep(ms / 1000)
        raise RuntimeError(f"await_cancel: the job was not canceled within {ms:g} ms")
    raise chirpy.NonRetryable(f"unknown do {do!r}")


def _message(payload: JSONObject) -> str:
    error = payload.get("error")
    return error if isinstance(error, str) else "" if error is None else str(error)


def _number(payload: JSONObject, key: str, default: float) -> float:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise chirpy.NonRetryable(f"payload.{key}: want a number, got {value!r}")
