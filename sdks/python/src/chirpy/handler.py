"""What a `chirpy.Worker` runs, and what its outcome means: the `Handler`
type, the exceptions that steer retries (`NonRetryable`, `RetryAfter`), and
the text a failure leaves in the job's ``last_error``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Union

from chirpy._wellknown import Seconds
from chirpy.resources import Job

Handler = Union[Callable[[Job], Awaitable[Any]], Callable[[Job], Any]]
"""What a worker runs for each job: ``async def handle(job) -> result``, or a
plain function (run in a thread with ``asyncio.to_thread``). The result must
be a JSON value (``None`` included)."""


class NonRetryable(Exception):
    """Raised by a handler: the job goes to the failure queue (``DEAD``) at
    once, whatever attempts it has left. The message is its ``last_error``.
    """


class RetryAfter(Exception):
    """Raised by a handler: the attempt failed, and the next one should wait
    ``delay`` (seconds or a ``timedelta``) instead of the backoff. Out of
    attempts, the job is ``DEAD`` all the same."""

    delay: timedelta
    """The wait before the next attempt."""

    def __init__(self, delay: Seconds, message: str = "") -> None:
        self.delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        super().__init__(message or f"retry after {self.delay.total_seconds():g}s")


def is_async(handler: Handler) -> bool:
    """True when calling ``handler`` returns a coroutine."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(getattr(target, "__call__", None))


def describe(error: BaseException) -> str:
    """The failure text of ``error``, kept as its job's ``last_error``: its
    message, or its type's name when the message is empty (as every Chirpy
    SDK reports a failure). The worker logs the traceback of any exception
    but `NonRetryable` and `RetryAfter`."""
    return str(error) or type(error).__name__
