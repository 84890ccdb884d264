"""Download links with an expiry for stored result files (a video over Telegram's 50 MB
upload limit is sent to its user as a link).

An object store gives its own presigned URL (``FileStorage.public_url``). A local folder
has none: the link is then ours, ``{PUBLIC_BASE_URL}/files/{key}?expires=&sig=``, served
by ``GET /files/{key}`` (``http.routes.files``), where ``sig`` is the HMAC-SHA256 of
``{key}\\n{expires}`` under a secret of the server (urlsafe base64 without padding) and
``expires`` the unix second the link stops working. Only result files
(``results/...``) are linked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import FileStorage

__all__ = ["LINKED_PREFIX", "FileLinks", "derive_link_secret", "linkable"]

LINKED_PREFIX = "results/"  # only result files are ever linked
MAX_EXPIRY_DIGITS = 12  # unix seconds far beyond any link; longer values are refused


def derive_link_secret(bot_token: str) -> bytes:
    """A signing key derived from the bot token (no extra setting is needed), apart from
    every other key derived from it."""
    return hashlib.sha256(f"lumigram-file-links:{bot_token}".encode()).digest()


def linkable(key: str) -> bool:
    """Whether ``key`` is one that may be linked: a result file."""
    return key.startswith(LINKED_PREFIX) and len(key) > len(LINKED_PREFIX)


class FileLinks:
    """Links to stored files that anybody holding them may download until they expire."""

    def __init__(
        self,
        storage: FileStorage,
        secret: bytes,
        public_base_url: str | None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        if not secret:
            raise ValueError("file links need a secret")
        self.storage = storage
        self._secret = secret
        self.public_base_url = (public_base_url or "").rstrip("/") or None
        self._clock = clock

    async def link(self, key: str, expires_in: int) -> tuple[str, datetime] | None:
        """A URL of the file for ``expires_in`` seconds and the moment it expires: the
        store's own (S3 presigned), else ours under the public base URL; None when
        there is neither (a local folder and no PUBLIC_BASE_URL). Raises ValueError for
        a key that may not be linked (not a result file) or a non-positive expiry."""
        if not linkable(key):
            raise ValueError(f"only result files are linked, not {key!r}")
        if expires_in <= 0:
            raise ValueError("a link expires in a positive number of seconds")
        now = self._clock()
        url = await self.storage.public_url(key, expires_in)
        if url is not None:
            return url, now + timedelta(seconds=expires_in)
        if self.public_base_url is None:
            return None
        expires = int(now.timestamp()) + expires_in
        sig = self.signature(key, expires)
        path = quote(key, safe="/")
        return (
            f"{self.public_base_url}/files/{path}?expires={expires}&sig={sig}",
            datetime.fromtimestamp(expires, UTC),
        )

    def signature(self, key: str, expires: int) -> str:
        """``sig`` of a link to ``key`` that expires at unix second ``expires``."""
        digest = hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, key: str, expires: int | str, sig: str, now: datetime | None = None) -> bool:
        """Whether ``sig`` is ours for ``key`` and ``expires`` and the link has not
        expired at ``now`` (the clock's time by default). Constant-time comparison."""
        if isinstance(expires, str):
            if not (expires.isascii() and expires.isdigit()) or len(expires) > MAX_EXPIRY_DIGITS:
                return False
            expires = int(expires)
        if not linkable(key) or expires < 0:
            return False
        expected = self.signature(key, expires).encode("ascii")
        matches = hmac.compare_digest(expected, sig.encode("utf-8", "replace"))
        moment = now if now is not None else self._clock()
        return matches and moment.timestamp() < expires
