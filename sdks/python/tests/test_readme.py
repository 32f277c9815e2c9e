"""The README's examples, run as written against the live server (only the
URL changes), each in a Python process of its own."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Server

import chirpy
from chirpy import JobState

README = Path(__file__).resolve().parents[1] / "README.md"
README_URL = "http://localhost:7000"


def python_blocks() -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 3, "the README should hold three Python examples: sync push, async push, worker"
    return blocks


def runnable(block: str, server: Server) -> str:
    assert README_URL in block, f"every example connects to {README_URL}"
    return block.replace(README_URL, server.url)


def test_readme_examples(server: Server) -> None:
    sync_push, async_push, worker = python_blocks()
    printed: dict[str, str] = {}
    for name, block in (("sync push", sync_push), ("async push", async_push)):
        done = subprocess.run(
            [sys.executable, "-c", runnable(block, server)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{name} example failed:\n{done.stdout}\n{done.stderr}"
        printed[name] = done.stdout
    assert "INVALID_ARGUMENT queue queue: ' ' is not allowed" in printed["sync push"]

    process = subprocess.Popen(
        [sys.executable, "-c", runnable(worker, server)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with chirpy.Client(server.url) as client:
            deadline = time.monotonic() + 20
            while True:
                jobs = list(client.list("email"))
                if all(j.state in (JobState.SUCCEEDED, JobState.CANCELED) for j in jobs):
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"the worker example did not work the jobs: {[j.state for j in jobs]}")
                time.sleep(0.1)
            succeeded = [j for j in jobs if j.state is JobState.SUCCEEDED]
            assert len(succeeded) == 3  # one of the sync example (the other is canceled), two of the async one
            assert all(j.result == {"sent": True} for j in succeeded)
            assert any(w.queues == ["email"] for w in client.workers())
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, f"the worker example did not stop cleanly:\n{output}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
