"""The one rule for storage keys, shared by every backend."""

from __future__ import annotations

import re

SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")


class StorageKeyError(ValueError):
    pass


def check_key(key: str) -> str:
    """``key`` itself if it is safe: letters, digits, ``._/-``, no ``..`` segment, at most
    256 characters, not starting with a separator. Raises StorageKeyError otherwise."""
    if not SAFE_KEY.match(key) or ".." in key.split("/"):
        raise StorageKeyError(f"unsafe storage key {key!r}")
    return key
