"""Fixtures: the real `chirpy` binary on 127.0.0.1, and clients of it.

The binary is ``$CHIRPY_BIN`` (default: the repository's
``target/debug/chirpy``; the tests never build it). It runs on a fresh SQLite
file with a 3 s lease TTL and 1 s retry backoffs, so that expiry and retries
happen within a test.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Optional

import pytest

import chirpy

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("CHIRPY_BIN", REPO / "target" / "debug" / "chirpy"))
_LISTENING = re.compile(r"chirpy listening on 127\.0\.0\.1:(\d+)")


class Server:
    """One `chirpy` process; `stop` and `start` again (same port, same
    database) to restart it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: Optional[subprocess.Popen[str]] = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Starts the binary and waits for its listening line."""
        if not BINARY.exists():
            pytest.fail(f"no chirpy binary at {BINARY}: build it (cargo build --bin chirpy) or set CHIRPY_BIN")
        env = {
            **os.environ,
            "CHIRPY_HOST": "127.0.0.1",
            "CHIRPY_PORT": str(self.port),
            "DATABASE_URL": f"sqlite://{self.directory / 'chirpy.db'}",
            "CHIRPY_LEASE_TTL": "3s",
            "CHIRPY_RETRY_INITIAL_BACKOFF": "1s",
            "CHIRPY_RETRY_MAX_BACKOFF": "1s",
            "CHIRPY_SHUTDOWN_GRACE": "2s",
            "CHIRPY_LOG": "info",
            "NO_COLOR": "1",
        }
        process = subprocess.Popen(
            [str(BINARY)],
            env=env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.process = process
        found = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.log.append(line.rstrip())
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(1))
                    found.set()

        # Drains stdout for the whole run, so the server never blocks on a
        # full pipe.
        threading.Thread(target=read, name="chirpy-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(self.log[-20:])
                pytest.fail(f"chirpy did not start (exit code {process.returncode}):\n{tail}")

    def stop(self) -> None:
        """Stops the process by its PID: SIGTERM, then SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server all tests share; each test uses queues of its own."""
    instance = Server(tmp_path_factory.mktemp("chirpy"))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"py-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(server: Server) -> Iterator[chirpy.Client]:
    """A blocking client of the shared server."""
    with chirpy.Client(server.url) as instance:
        yield instance


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[chirpy.AsyncClient]:
    """An asyncio client of the shared server."""
    async with chirpy.AsyncClient(server.url) as instance:
        yield instance


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, which it may stop and start again."""
    instance = Server(tmp_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
