"""API keys: how a user's programs reach the HTTP API.

A key is shown once when created and stored only as its SHA-256 hash; its callback
signing secret is stored as is (it signs results POSTed to a ``callback_url`` and
cannot call the API).

A key is ``lg_`` and 40 url-safe random characters (240 bits); lists show its first
11 characters (``lg_`` and 8) to tell keys apart. A signing secret is ``whsec_`` and
32 url-safe random characters.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

KEY_PREFIX = "lg_"
KEY_RANDOM_LENGTH = 40
KEY_LENGTH = len(KEY_PREFIX) + KEY_RANDOM_LENGTH
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # what lists show: "lg_" and 8 characters
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SECRET_RANDOM_LENGTH = 32
MAX_KEYS_PER_USER = 5  # active keys; revoked ones do not count
MAX_NAME_LENGTH = 64
DEFAULT_NAME = "Key {number}"
# A key's last use is written at most this often, so every API call is not a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

URL_SAFE_ALPHABET = string.ascii_letters + string.digits + "-_"
_KEY_PATTERN = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{{KEY_RANDOM_LENGTH}}}")


class InvalidKeyNameError(ValueError):
    """A key name that is too long or has control characters in it."""


@dataclass(eq=False)
class ApiKey:
    user_id: int
    name: str
    prefix: str  # the first characters of the key, shown in lists to tell keys apart
    key_hash: str  # sha256 hex of the whole key
    signing_secret: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    id: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoke(self, now: datetime) -> bool:
        """Revoke the key; False if it was revoked before (nothing changes)."""
        if self.revoked_at is not None:
            return False
        self.revoked_at = now
        return True

    def needs_touch(self, now: datetime) -> bool:
        """Whether a use at ``now`` should be written (at most once a resolution)."""
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION


def _random(length: int) -> str:
    """``length`` url-safe random characters (6 bits each)."""
    return "".join(secrets.choice(URL_SAFE_ALPHABET) for _ in range(length))


def hash_key(plaintext: str) -> str:
    """The SHA-256 hex digest of the whole key: what is stored and looked up."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def key_prefix(plaintext: str) -> str:
    return plaintext[:PREFIX_LENGTH]


def new_key() -> tuple[str, str, str]:
    """A fresh key: (plaintext, prefix, hash). The plaintext is shown once, never stored."""
    plaintext = KEY_PREFIX + _random(KEY_RANDOM_LENGTH)
    return plaintext, key_prefix(plaintext), hash_key(plaintext)


def new_signing_secret() -> str:
    return SECRET_PREFIX + _random(SECRET_RANDOM_LENGTH)


def looks_like_key(text: str) -> bool:
    """The format check done before any lookup: ``lg_`` and 40 url-safe characters."""
    return len(text) == KEY_LENGTH and _KEY_PATTERN.fullmatch(text) is not None


def default_name(taken: Iterable[str]) -> str:
    """ "Key N" with the smallest N no other key of the user is called."""
    names = set(taken)
    number = 1
    while DEFAULT_NAME.format(number=number) in names:
        number += 1
    return DEFAULT_NAME.format(number=number)


def clean_name(name: str | None, taken: Iterable[str] = ()) -> str:
    """The name to store: stripped, 1-64 characters, no control characters; the default
    name when none is given. Raises InvalidKeyNameError."""
    name = (name or "").strip()
    if not name:
        return default_name(taken)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidKeyNameError(f"a key name has at most {MAX_NAME_LENGTH} characters")
    if any(not character.isprintable() for character in name):
        raise InvalidKeyNameError("a key name has no control characters")
    return name
