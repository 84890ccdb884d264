"""Files in a local folder. File I/O runs in a thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")


class StorageKeyError(ValueError):
    pass


class LocalStorage:
    """Implements ``services.ports.FileStorage`` over ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key) or ".." in key.split("/"):
            raise StorageKeyError(f"unsafe storage key {key!r}")
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageKeyError(f"storage key {key!r} escapes the storage folder")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        await asyncio.to_thread(_write_atomically, path, data)
        return key

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).exists)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
