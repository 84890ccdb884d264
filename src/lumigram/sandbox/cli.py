"""``lumigram sandbox``: the emulator, the real bot and the web UI on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from pathlib import Path

from .server import PortInUseError, SandboxServer
from .session import STATE_FILE, Sandbox, SandboxError

EXIT_USAGE = 2


def _fresh(data_dir: Path) -> str | None:
    """Delete the data folder for ``--fresh``; a problem to report, or None."""
    if not data_dir.exists():
        return None
    if not data_dir.is_dir():
        return f"--data {data_dir} is not a folder"
    if any(data_dir.iterdir()) and not (data_dir / STATE_FILE).is_file():
        # Not a sandbox's folder (no sandbox.json): never delete someone's files.
        return f"--fresh: {data_dir} has files but no {STATE_FILE}; not deleting it"
    shutil.rmtree(data_dir)
    return None


def run_sandbox(
    *, host: str, port: int, data_dir: Path, fresh: bool = False, fake_providers: bool = False
) -> int:
    if fresh and (problem := _fresh(data_dir)) is not None:
        print(f"Lumigram sandbox: {problem}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(host, port, data_dir, fake_providers))
    return 0


async def _serve(host: str, port: int, data_dir: Path, fake_providers: bool) -> int:
    server = SandboxServer(Sandbox(data_dir, fake_providers=fake_providers))
    try:
        url = await server.bind(host, port)
    except PortInUseError:
        print(
            f"Lumigram sandbox: port {port} is in use; choose another with --port",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as error:
        print(
            f"Lumigram sandbox: cannot listen on {host}:{port} ({error.strerror or error}); "
            "check --host and --port",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for wanted in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(wanted, stop.set)
    try:
        try:
            await server.start()
        except SandboxError as error:
            print(f"Lumigram sandbox: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"Lumigram sandbox: {url} (Ctrl+C to stop)", flush=True)
        await stop.wait()
    finally:
        await server.stop()
    return 0
