"""Python values to and from protobuf's well-known types.

Owns three conversions: JSON values (``dict``/``list``/``str``/``int``/
``float``/``bool``/``None``) and ``google.protobuf.Value``; ``datetime`` and
``Timestamp``; seconds or ``timedelta`` and ``Duration``. It knows nothing of
Chirpy's messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

JSON = Any
"""A JSON value: ``dict`` (string keys), ``list``, ``str``, ``int``,
``float``, ``bool`` or ``None``, nested freely. (``Any`` because recursive
aliases make callers cast; the value is checked at run time.)"""

Seconds = Union[float, timedelta]
"""A span of time: seconds as a number, or a ``timedelta``."""

# Integers beyond this lose precision as a JSON number (an IEEE double).
_MAX_SAFE_INTEGER = 2**53


def to_value(value: JSON, *, _path: str = "") -> struct_pb2.Value:
    """Converts a JSON value into a ``google.protobuf.Value``.

    Tuples are taken as lists. Raises ``TypeError`` for anything that is not
    JSON (a ``set``, ``bytes``, a non-string key, an object) and
    ``ValueError`` for NaN, infinities and integers too large for a JSON
    number (beyond 2**53 in magnitude).
    """
    message = struct_pb2.Value()
    _fill(message, value, _path or "$")
    return message


def _fill(message: struct_pb2.Value, value: JSON, path: str) -> None:
    if value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: {value} is too large for a JSON number (at most 2**53)")
        message.number_value = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value} is not a JSON number")
        message.number_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, Mapping):
        fields = message.struct_value.fields
        message.struct_value.SetInParent()
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: key {key!r} is not a string")
            _fill(fields[key], item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        values = message.list_value.values
        message.list_value.SetInParent()
        for index, item in enumerate(value):
            _fill(values.add(), item, f"{path}[{index}]")
    else:
        raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def from_value(message: struct_pb2.Value) -> JSON:
    """Converts a ``google.protobuf.Value`` into a plain JSON value.

    Whole numbers come back as ``int`` (JSON does not tell ``1`` from
    ``1.0``), other numbers as ``float``. An unset ``Value`` is ``None``.
    """
    kind = message.WhichOneof("kind")
    if kind == "bool_value":
        return message.bool_value
    if kind == "number_value":
        number = message.number_value
        if number.is_integer() and abs(number) <= _MAX_SAFE_INTEGER:
            return int(number)
        return number
    if kind == "string_value":
        return message.string_value
    if kind == "struct_value":
        return {key: from_value(item) for key, item in message.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(item) for item in message.list_value.values]
    return None


def to_timestamp(moment: datetime | timedelta) -> timestamp_pb2.Timestamp:
    """A ``Timestamp`` for ``moment``: a ``datetime`` (naive ones are taken
    as UTC, as protobuf does), or a ``timedelta`` from now."""
    if isinstance(moment, timedelta):
        moment = datetime.now(timezone.utc) + moment
    elif not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime or timedelta, got {type(moment).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment)
    return message


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    """The ``Timestamp`` as an aware ``datetime`` in UTC."""
    return message.ToDatetime(tzinfo=timezone.utc)


def to_duration(span: Seconds) -> duration_pb2.Duration:
    """A ``Duration`` of ``span`` (seconds or a ``timedelta``)."""
    if isinstance(span, timedelta):
        seconds = span.total_seconds()
    elif isinstance(span, (int, float)) and not isinstance(span, bool):
        seconds = float(span)
    else:
        raise TypeError(f"expected seconds or a timedelta, got {type(span).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds, zero or more; got {span!r}")
    message = duration_pb2.Duration()
    whole = math.floor(seconds)
    message.seconds = whole
    message.nanos = min(round((seconds - whole) * 1e9), 999_999_999)
    return message


def from_duration(message: duration_pb2.Duration) -> timedelta:
    """The ``Duration`` as a ``timedelta``."""
    return timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)
