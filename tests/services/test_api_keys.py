"""ApiKeyService against the real repository and database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.domain.api_keys import MAX_KEYS_PER_USER, InvalidKeyNameError, hash_key
from lumigram.services.api_keys import ApiKeyService, TooManyKeysError

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def service(session: AsyncSession, clock: FakeClock | None = None) -> ApiKeyService:
    return ApiKeyService(ApiKeyRepository(session), session, clock=clock or FakeClock())


async def add_users(sessions: Sessions, *user_ids: int) -> None:
    async with sessions() as session:
        for user_id in user_ids:
            await session.execute(
                tables.users.insert().values(
                    id=user_id,
                    language="en",
                    referral_code=f"code{user_id:04d}",
                    created_at=START,
                    last_seen_at=START,
                )
            )
        await session.commit()


@contextmanager
def writes(engine: AsyncEngine) -> Iterator[list[str]]:
    """The INSERT/UPDATE/DELETE statements sent meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        if statement.startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_created_key_is_stored_as_its_hash_and_authenticates(
    sessionmaker: Sessions,
) -> None:
    await add_users(sessionmaker, 1)
    async with sessionmaker() as session:
        created = await service(session).create(1, "  my script ")
    key = created.key
    assert key.id is not None
    assert key.name == "my script"
    assert key.prefix == created.plaintext[:11]
    assert created.signing_secret.startswith("whsec_")
    assert key.signing_secret == created.signing_secret
    async with sessionmaker() as session:
        row = (await session.execute(select(tables.api_keys))).one()
    assert row.key_hash == hash_key(created.plaintext)
    assert created.plaintext not in [str(value) for value in row]  # never the plaintext
    async with sessionmaker() as session:
        found = await service(session).authenticate(created.plaintext)
    assert found is not None
    assert found.id == key.id
    assert found.user_id == 1
    async with sessionmaker() as session:
        assert await service(session).signing_secret(key.id) == created.signing_secret
        assert await service(session).signing_secret(key.id + 100) is None


async def test_what_is_not_a_key_of_ours_does_not_authenticate(sessionmaker: Sessions) -> None:
    await add_users(sessionmaker, 1)
    async with sessionmaker() as session:
        created = await service(session).create(1)
    changed = created.plaintext[:-1] + ("A" if created.plaintext[-1] != "A" else "B")
    async with sessionmaker() as session:
        keys = service(session)
        assert await keys.authenticate(changed) is None
        assert await keys.authenticate("lg_" + "a" * 40) is None
        assert await keys.authenticate("") is None
        assert await keys.authenticate(created.plaintext + " ") is None
        assert await keys.authenticate(created.key.key_hash) is None  # the hash is no key


async def test_default_names_count_up_and_the_list_is_newest_first(
    sessionmaker: Sessions,
) -> None:
    await add_users(sessionmaker, 1)
    clock = FakeClock()
    names = []
    for _ in range(3):
        async with sessionmaker() as session:
            names.append((await service(session, clock).create(1)).key.name)
        clock.now += timedelta(seconds=1)
    assert names == ["Key 1", "Key 2", "Key 3"]
    async with sessionmaker() as session:
        listed = await service(session).list(1)
    assert [key.name for key in listed] == ["Key 3", "Key 2", "Key 1"]
    async with sessionmaker() as session:
        assert await service(session).list(2) == []


async def test_a_name_that_cannot_be_stored_is_refused(sessionmaker: Sessions) -> None:
    await add_users(sessionmaker, 1)
    async with sessionmaker() as session:
        with pytest.raises(InvalidKeyNameError):
            await service(session).create(1, "x" * 65)
    async with sessionmaker() as session:
        assert await service(session).list(1) == []


async def test_at_most_five_active_keys_and_a_revoked_one_frees_a_place(
    sessionmaker: Sessions,
) -> None:
    await add_users(sessionmaker, 1, 2)
    created = []
    for _ in range(MAX_KEYS_PER_USER):
        async with sessionmaker() as session:
            created.append(await service(session).create(1))
    async with sessionmaker() as session:
        with pytest.raises(TooManyKeysError) as refused:
            await service(session).create(1)
    assert refused.value.limit == MAX_KEYS_PER_USER
    async with sessionmaker() as session:
        assert len(await service(session).list(1)) == MAX_KEYS_PER_USER
        await service(session).create(2)  # another user's limit is their own
    first = created[0].key
    assert first.id is not None
    async with sessionmaker() as session:
        assert await service(session).revoke(1, first.id)
    async with sessionmaker() as session:
        again = await service(session).create(1)
    assert again.key.name == first.name  # its default name is free again


async def test_creating_at_once_cannot_pass_the_limit(sessionmaker: Sessions) -> None:
    await add_users(sessionmaker, 1)

    async def create() -> bool:
        async with sessionmaker() as session:
            try:
                await service(session).create(1)
            except TooManyKeysError:
                return False
            return True

    results = await asyncio.gather(*(create() for _ in range(MAX_KEYS_PER_USER + 3)))
    assert sum(results) == MAX_KEYS_PER_USER
    async with sessionmaker() as session:
        assert len(await service(session).list(1)) == MAX_KEYS_PER_USER


async def test_revoking_is_for_the_owner_only_idempotent_and_final(
    sessionmaker: Sessions,
) -> None:
    await add_users(sessionmaker, 1, 2)
    clock = FakeClock()
    async with sessionmaker() as session:
        created = await service(session, clock).create(1)
    key_id = created.key.id
    assert key_id is not None
    async with sessionmaker() as session:
        assert not await service(session, clock).revoke(2, key_id)  # not theirs
        assert not await service(session, clock).revoke(1, key_id + 100)  # no such key
    async with sessionmaker() as session:
        assert await service(session, clock).authenticate(created.plaintext) is not None
    clock.now += timedelta(minutes=5)
    async with sessionmaker() as session:
        assert await service(session, clock).revoke(1, key_id)
    revoked_at = clock.now
    clock.now += timedelta(minutes=5)
    async with sessionmaker() as session:
        assert await service(session, clock).revoke(1, key_id)  # again: still True
    async with sessionmaker() as session:
        assert await service(session, clock).authenticate(created.plaintext) is None
        assert await service(session, clock).list(1) == []
        # Callbacks of jobs made before the revocation are still signed.
        assert await service(session, clock).signing_secret(key_id) == created.signing_secret
    async with sessionmaker() as session:
        row = (await session.execute(select(tables.api_keys))).one()
    assert row.revoked_at == revoked_at


async def test_the_last_use_is_written_at_most_once_a_minute(
    sessionmaker: Sessions, engine: AsyncEngine
) -> None:
    await add_users(sessionmaker, 1)
    clock = FakeClock()
    async with sessionmaker() as session:
        created = await service(session, clock).create(1)
    assert created.key.last_used_at is None

    async def use() -> tuple[datetime | None, list[str]]:
        with writes(engine) as seen:
            async with sessionmaker() as session:
                key = await service(session, clock).authenticate(created.plaintext)
        assert key is not None
        async with sessionmaker() as session:
            stored = (await session.execute(select(tables.api_keys.c.last_used_at))).scalar_one()
        assert key.last_used_at == stored
        return stored, seen

    first, seen = await use()
    assert first == START
    assert len(seen) == 1
    assert seen[0].startswith("UPDATE")
    clock.now += timedelta(seconds=59)
    assert await use() == (START, [])  # within the minute: no write at all
    clock.now += timedelta(seconds=1)
    later, seen = await use()
    assert later == START + timedelta(minutes=1)
    assert len(seen) == 1
