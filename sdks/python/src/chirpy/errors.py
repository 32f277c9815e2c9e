"""Errors the server returns, as one exception hierarchy.

Every failed call raises a `ChirpyError` subclass named after its gRPC code
(`NotFound`, `InvalidArgument`, `FailedPrecondition`, ...). Each carries the
code, the server's message, and the fields named by a ``google.rpc.BadRequest``
detail when the server sent one (it does for every invalid argument). The
original ``grpc.RpcError`` is the exception's ``__cause__``.

Arguments this SDK can check itself (a payload that is not JSON, a negative
duration) raise ``TypeError`` or ``ValueError`` before any call is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import grpc
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, from ``google.rpc.BadRequest``."""

    field: str
    """The field's path, e.g. ``queue`` or ``jobs[3].payload``."""
    description: str
    """What is wrong with it."""


class ChirpyError(Exception):
    """A call the server (or the transport) refused.

    Catch a subclass for one code, or this class for all of them.
    """

    code: grpc.StatusCode
    """The gRPC status code."""
    message: str
    """The server's message, e.g. ``queue: ' ' is not allowed; ...``."""
    field_violations: list[FieldViolation]
    """The invalid fields the server named, possibly none."""
    status: Optional[status_pb2.Status]
    """The full ``google.rpc.Status`` when the server sent one."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        field_violations: Optional[list[FieldViolation]] = None,
        status: Optional[status_pb2.Status] = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field_violations = field_violations or []
        self.status = status

    @property
    def field(self) -> Optional[str]:
        """The first invalid field, if the server named one."""
        return self.field_violations[0].field if self.field_violations else None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.name})"


class Cancelled(ChirpyError):
    """``CANCELLED``: the call was canceled, usually by the caller."""


class Unknown(ChirpyError):
    """``UNKNOWN``: an error without a better code."""


class InvalidArgument(ChirpyError):
    """``INVALID_ARGUMENT``: the request broke a limit; ``field`` names it."""


class DeadlineExceeded(ChirpyError):
    """``DEADLINE_EXCEEDED``: the call's timeout passed first."""


class NotFound(ChirpyError):
    """``NOT_FOUND``: no such job."""


class AlreadyExists(ChirpyError):
    """``ALREADY_EXISTS``."""


class PermissionDenied(ChirpyError):
    """``PERMISSION_DENIED``."""


class ResourceExhausted(ChirpyError):
    """``RESOURCE_EXHAUSTED``: e.g. a request larger than the server takes."""


class FailedPrecondition(ChirpyError):
    """``FAILED_PRECONDITION``: the job's state forbids it (canceling a
    finished job, retrying one that is not dead, a lost lease)."""


class Aborted(ChirpyError):
    """``ABORTED``."""


class OutOfRange(ChirpyError):
    """``OUT_OF_RANGE``."""


class Unimplemented(ChirpyError):
    """``UNIMPLEMENTED``: the server does not know the call."""


class Internal(ChirpyError):
    """``INTERNAL``: the server failed."""


class Unavailable(ChirpyError):
    """``UNAVAILABLE``: the server cannot be reached or is shutting down."""


class DataLoss(ChirpyError):
    """``DATA_LOSS``."""


class Unauthenticated(ChirpyError):
    """``UNAUTHENTICATED``."""


_BY_CODE: dict[grpc.StatusCode, type[ChirpyError]] = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Unknown,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}

# Codes that say the call may succeed if repeated later (the server
# restarting, a network blip, an overloaded storage).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def is_transient(error: ChirpyError) -> bool:
    """True when repeating the call later may succeed."""
    return error.code in TRANSIENT_CODES


def from_code(
    code: grpc.StatusCode,
    message: str,
    *,
    status: Optional[status_pb2.Status] = None,
) -> ChirpyError:
    """The `ChirpyError` subclass for ``code``, with the ``BadRequest``
    fields of ``status`` when it has them."""
    violations: list[FieldViolation] = []
    if status is not None:
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):  # False for other detail types
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
    cls = _BY_CODE.get(code, ChirpyError)
    return cls(message, code=code, field_violations=violations, status=status)


def from_status(status: status_pb2.Status) -> ChirpyError:
    """The error of a ``google.rpc.Status`` message (as in a batch call's
    per-item outcome)."""
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    return from_code(code, status.message, status=status)


def from_rpc_error(error: grpc.RpcError) -> ChirpyError:
    """The `ChirpyError` of a failed gRPC call, sync or asyncio.

    Reads ``grpc-status-details-bin`` from the trailing metadata for the
    ``google.rpc.Status`` and its ``BadRequest`` detail.
    """
    if not isinstance(error, (grpc.Call, grpc.aio.AioRpcError)):
        return ChirpyError(str(error) or type(error).__name__)
    code = error.code() or grpc.StatusCode.UNKNOWN
    message = error.details() or ""
    status: Optional[status_pb2.Status] = None
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # a malformed detail must not hide the error itself
                status = None
            break
    return from_code(code, message, status=status)
