"""Files in a local folder. File I/O runs in a thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from lumigram.storage.keys import StorageKeyError, check_key

__all__ = ["LocalStorage", "StorageKeyError"]


class LocalStorage:
    """Implements ``services.ports.FileStorage`` over ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
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

    async def public_url(self, key: str, expires_in: int) -> str | None:
        """None: a local file has no URL of its own (the API serves it)."""
        check_key(key)
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
