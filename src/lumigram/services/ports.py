"""The gateways services depend on; the db adapter implements them."""

from __future__ import annotations

from typing import Protocol

from lumigram.domain.audit import AuditEntry
from lumigram.domain.users import User


class DuplicateError(Exception):
    """A row with the same unique key already exists (e.g. a concurrent registration)."""


class TransactionManager(Protocol):
    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UserGateway(Protocol):
    async def get(self, user_id: int) -> User | None: ...

    async def get_by_referral_code(self, code: str) -> User | None: ...

    async def add(self, user: User) -> None:
        """Insert; raises DuplicateError if the id or referral code is taken."""
        ...


class AuditGateway(Protocol):
    async def add(self, entry: AuditEntry) -> None: ...
