"""Starting the real `lumigram` command as a child process, as an operator would."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

PIPE = asyncio.subprocess.PIPE
STDOUT = asyncio.subprocess.STDOUT
DEVNULL = asyncio.subprocess.DEVNULL


async def start_lumigram(
    *args: str,
    cwd: Path,
    env: dict[str, str],
    stdout: int = PIPE,
    stderr: int = STDOUT,
) -> asyncio.subprocess.Process:
    """``python -m lumigram ARGS`` in ``cwd`` with exactly ``env`` (no inherited settings)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lumigram", *args, cwd=cwd, env=env, stdout=stdout, stderr=stderr
    )
