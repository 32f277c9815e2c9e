"""The Python SDK's conformance runner (see conformance/README.md).

Reads one JSON request per line on stdin, runs each through the public
asyncio API of the ``chirpy`` package (`chirpy.AsyncClient` and
`chirpy.Worker`, on one event loop), and writes one JSON response per line
on stdout, in order, flushing each. Requests run one at a time; workers run
in the background meanwhile. Logs go to stderr. When stdin closes, every
worker stops gracefully (handlers still running after `EXIT_GRACE` are
cancelled) and the runner exits 0.

The server is ``$CHIRPY_URL``, such as ``http://127.0.0.1:7011``. Run from
the repository root::

    CHIRPY_URL=http://127.0.0.1:7000 .venv/bin/python conformance/runners/python/runner.py

Errors are reported with the gRPC code of the SDK's `chirpy.ChirpyError`.
The SDK's own argument checks raise ``TypeError`` or ``ValueError``, which
carry no code: those are reported as ``UNKNOWN``. A step the SDK's types
cannot express is ``unsupported``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any, TextIO

import chirpy
from shapes import Args, Unexpressible
from steps import RunnerError, Steps

logger = logging.getLogger("runner")

EXIT_GRACE = 5.0
"""Seconds the workers get to finish their handlers once stdin closes (an
``await_cancel`` nobody canceled waits 30 s by default). The driver
kills a runner that takes more than 10 s to exit."""


async def respond(steps: Steps, request: Any) -> dict[str, Any]:
    """The response to one request."""
    if not isinstance(request, dict) or not isinstance(request.get("kind"), str):
        return {"id": request.get("id") if isinstance(request, dict) else None, "unsupported": "not a request"}
    request_id, kind = request.get("id"), request["kind"]
    step = steps.by_kind.get(kind)
    if step is None:
        return {"id": request_id, "unsupported": f"unknown kind {kind}"}
    try:
        result = await step(Args(kind, request.get("args")))
    except Unexpressible as error:
        return {"id": request_id, "unsupported": str(error)}
    except chirpy.ChirpyError as error:
        return {"id": request_id, "error": {"code": error.code.name, "message": error.message}}
    except RunnerError as error:
        return {"id": request_id, "error": {"code": "UNKNOWN", "message": str(error)}}
    except Exception as error:
        # The SDK's own checks (TypeError, ValueError) attach no gRPC code.
        logger.warning("%s failed without a gRPC code", kind, exc_info=True)
        return {"id": request_id, "error": {"code": "UNKNOWN", "message": f"{type(error).__name__}: {error}"}}
    return {"id": request_id, "result": result}


async def serve(url: str, stdout: TextIO) -> None:
    """Answers the requests of stdin until it closes, then stops the workers."""
    loop = asyncio.get_running_loop()
    async with chirpy.AsyncClient(url) as client:
        steps = Steps(client)
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except ValueError as error:
                    logger.error("not a JSON request (%s): %r", error, line)
                    request = None
                response = await respond(steps, request)
                stdout.write(json.dumps(response, separators=(",", ":")) + "\n")
                stdout.flush()
            logger.info("stdin closed; stopping the workers")
        finally:
            await steps.stop_all(EXIT_GRACE)


def main() -> int:
    # Only protocol lines go to stdout: anything else printing there (a
    # library's stray print) goes to stderr instead.
    stdout, sys.stdout = sys.stdout, sys.stderr
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("CHIRPY_RUNNER_LOG", "INFO").upper(),
        format="python-runner %(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = os.environ.get("CHIRPY_URL")
    if not url:
        logger.error("CHIRPY_URL is not set")
        return 2
    asyncio.run(serve(url, stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
