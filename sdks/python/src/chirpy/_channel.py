"""Where to connect: Chirpy URLs (``http://host:7000``) to gRPC targets and
channels, sync or asyncio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

import grpc

ChannelOptions = Sequence[tuple[str, Any]]
"""Extra gRPC channel arguments, e.g. ``[("grpc.keepalive_time_ms", 30000)]``."""

_DEFAULT_OPTIONS: list[tuple[str, Any]] = [
    # A listing page of large payloads easily passes grpc's 4 MiB default;
    # the server bounds what it sends.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # After the server restarts, reconnect within seconds: grpc's default
    # backoff grows to 120 s, long enough for a worker's leases to expire.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 3000),
]


class Target(NamedTuple):
    """A gRPC target and whether it needs TLS."""

    address: str
    tls: bool


def parse(url: str) -> Target:
    """The gRPC target of a Chirpy URL.

    ``http://host:port`` is plaintext (h2c), ``https://host:port`` is TLS
    (ports default to 80 and 443). Anything without a scheme is a gRPC
    target as grpcio takes it (``host:port``, ``dns:///host:port``,
    ``unix:/path``), plaintext.
    """
    if "://" not in url or url.startswith(("dns:", "unix:", "ipv4:", "ipv6:")):
        if not url:
            raise ValueError("empty Chirpy URL")
        return Target(url, tls=False)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme in Chirpy URL {url!r}: use http:// or https://")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a Chirpy URL has no path: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in Chirpy URL {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Target(f"{host}:{port}", tls=tls)


def _options(extra: Optional[ChannelOptions]) -> list[tuple[str, Any]]:
    return [*_DEFAULT_OPTIONS, *(extra or ())]


def sync_channel(
    url: str,
    credentials: Optional[grpc.ChannelCredentials],
    options: Optional[ChannelOptions],
) -> grpc.Channel:
    """A grpcio channel to ``url``."""
    target = parse(url)
    if target.tls or credentials is not None:
        return grpc.secure_channel(
            target.address, credentials or grpc.ssl_channel_credentials(), options=_options(options)
        )
    return grpc.insecure_channel(target.address, options=_options(options))


def aio_channel(
    url: str,
    credentials: Optional[grpc.ChannelCredentials],
    options: Optional[ChannelOptions],
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``url``."""
    target = parse(url)
    if target.tls or credentials is not None:
        return grpc.aio.secure_channel(
            target.address, credentials or grpc.ssl_channel_credentials(), options=_options(options)
        )
    return grpc.aio.insecure_channel(target.address, options=_options(options))
