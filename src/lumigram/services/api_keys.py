"""API keys: create, list and revoke a user's keys; authenticate an API request.

Each public method is one transaction. The plaintext of a key exists only in the
``CreatedKey`` returned by ``create``; what is stored is its hash.
"""

from __future__ import annotations

import builtins
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lumigram.domain.api_keys import (
    MAX_KEYS_PER_USER,
    ApiKey,
    clean_name,
    hash_key,
    looks_like_key,
    new_key,
    new_signing_secret,
)
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import TransactionManager
from lumigram.services.unit import use_case


class ApiKeyGateway(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: int) -> ApiKey | None: ...

    async def by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def list_for_user(self, user_id: int) -> list[ApiKey]:
        """The user's active keys, newest first."""
        ...

    async def count_active(self, user_id: int) -> int: ...

    async def lock_user(self, user_id: int) -> None:
        """Serialise key creation per user."""
        ...

    async def touch(self, key_id: int, now: datetime) -> None:
        """Set the key's ``last_used_at``."""
        ...


class TooManyKeysError(Exception):
    """The user has MAX_KEYS_PER_USER active keys already."""

    def __init__(self, limit: int = MAX_KEYS_PER_USER) -> None:
        super().__init__(f"at most {limit} active API keys")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored
    signing_secret: str  # shown once with the key (it is also kept, to sign callbacks)


class ApiKeyService:
    def __init__(
        self, repository: ApiKeyGateway, tx: TransactionManager, clock: Clock = utc_now
    ) -> None:
        self._keys = repository
        self._tx = tx
        self._clock = clock

    @use_case
    async def create(self, user_id: int, name: str | None = None) -> CreatedKey:
        """A new key; TooManyKeysError at MAX_KEYS_PER_USER active keys, and
        InvalidKeyNameError (a ValueError) for a name that cannot be stored."""
        await self._keys.lock_user(user_id)
        active = await self._keys.list_for_user(user_id)
        if len(active) >= MAX_KEYS_PER_USER:
            raise TooManyKeysError(MAX_KEYS_PER_USER)
        clean = clean_name(name, (key.name for key in active))
        plaintext, prefix, key_hash = new_key()
        secret = new_signing_secret()
        key = ApiKey(
            user_id=user_id,
            name=clean,
            prefix=prefix,
            key_hash=key_hash,
            signing_secret=secret,
            created_at=self._clock(),
        )
        await self._keys.add(key)
        return CreatedKey(key=key, plaintext=plaintext, signing_secret=secret)

    @use_case
    async def list(self, user_id: int) -> builtins.list[ApiKey]:
        """The user's active keys, newest first."""
        return await self._keys.list_for_user(user_id)

    @use_case
    async def revoke(self, user_id: int, key_id: int) -> bool:
        """Revoke one of the user's keys; True if it is revoked now (or was before),
        False if the user has no such key."""
        key = await self._keys.get(key_id)
        if key is None or key.user_id != user_id:
            return False
        key.revoke(self._clock())
        return True

    @use_case
    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` is, or None. Its last use is written at most
        once a minute."""
        if not looks_like_key(plaintext):
            return None
        key_hash = hash_key(plaintext)
        key = await self._keys.by_hash(key_hash)
        if key is None or not hmac.compare_digest(key.key_hash, key_hash) or not key.active:
            return None
        now = self._clock()
        if key.needs_touch(now) and key.id is not None:
            await self._keys.touch(key.id, now)
            key.last_used_at = now
        return key

    @use_case
    async def signing_secret(self, key_id: int) -> str | None:
        """The secret that signs the callbacks of requests made with the key (revoked
        keys included: their jobs may still finish)."""
        key = await self._keys.get(key_id)
        return key.signing_secret if key is not None else None
