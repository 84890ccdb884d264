"""A real Redis for the tests: a private ``redis-server`` started on a free port.

The suite's own server (``--save ''``, no persistence, in a temporary folder) keeps
tests away from any data in the machine's Redis. Without the ``redis-server`` binary,
LUMIGRAM_TEST_REDIS_URL names a server to use instead (its database is flushed);
with neither, the Redis tests are skipped, except when LUMIGRAM_REQUIRE_REDIS is set
(CI sets it), where that is an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL for this test session (database 0 of a private server)."""
    binary = shutil.which("redis-server")
    given = os.environ.get("LUMIGRAM_TEST_REDIS_URL", "")
    if binary is None:
        if given:
            yield given
            return
        reason = "no redis-server binary and no LUMIGRAM_TEST_REDIS_URL: Redis tests not run"
        if os.environ.get("LUMIGRAM_REQUIRE_REDIS"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="lumigram-redis-") as folder:
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
                "--logfile",
                os.path.join(folder, "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while not _answers("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
