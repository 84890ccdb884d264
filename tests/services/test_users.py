"""UserService against the real repositories and database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.services.users import Contact, UserPolicy, UserService

Sessions = async_sessionmaker[AsyncSession]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def service(session: AsyncSession, clock: FakeClock | None = None, **policy: object) -> UserService:
    return UserService(
        UserRepository(session),
        AuditRepository(session),
        session,
        UserPolicy(**policy),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


async def test_first_contact_creates_the_user_in_their_language(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        registration = await service(session).register_contact(
            Contact(user_id=42, first_name="Ann", username="ann", language_code="ru")
        )
    assert registration.created
    assert registration.user.language == "ru"
    async with sessionmaker() as session:
        again = await service(session).register_contact(
            Contact(user_id=42, first_name="Ann", username="ann")
        )
    assert not again.created
    assert again.user.referral_code == registration.user.referral_code


async def test_unknown_language_falls_back_to_default(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        registration = await service(session, default_language="uz").register_contact(
            Contact(user_id=1, first_name="X", language_code="de")
        )
    assert registration.user.language == "uz"


async def test_no_write_when_nothing_changed(sessionmaker: Sessions) -> None:
    clock = FakeClock()
    async with sessionmaker() as session:
        await service(session, clock).register_contact(Contact(user_id=7, first_name="Bo"))
    first_seen = clock.now
    clock.now += timedelta(seconds=30)
    async with sessionmaker() as session:
        user = (
            await service(session, clock).register_contact(Contact(user_id=7, first_name="Bo"))
        ).user
    assert user.last_seen_at == first_seen  # within the resolution: not written
    clock.now += timedelta(minutes=10)
    async with sessionmaker() as session:
        await service(session, clock).register_contact(Contact(user_id=7, first_name="Bob"))
    async with sessionmaker() as session:
        row = (await session.execute(select(tables.users).where(tables.users.c.id == 7))).one()
    assert row.first_name == "Bob"
    assert row.last_seen_at == clock.now


async def test_admin_ids_grant_the_admin_role(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        user = (
            await service(session, admin_ids=frozenset({9})).register_contact(
                Contact(user_id=9, first_name="Root")
            )
        ).user
    assert user.is_admin


async def test_concurrent_first_contacts_create_one_user(sessionmaker: Sessions) -> None:
    async def register() -> bool:
        async with sessionmaker() as session:
            return (
                await service(session).register_contact(Contact(user_id=77, first_name="Z"))
            ).created

    created = await asyncio.gather(*(register() for _ in range(8)))
    assert sum(created) == 1
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(tables.users))
    assert count == 1


async def test_referrer_attached_once_never_to_oneself(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        users = service(session)
        referrer = (await users.register_contact(Contact(user_id=1, first_name="R"))).user
        await users.remember_start_payload(referrer, f"ref_{referrer.referral_code}")
        assert referrer.referred_by_id is None  # not to oneself
        newcomer = (await users.register_contact(Contact(user_id=2, first_name="N"))).user
        await users.remember_start_payload(newcomer, f"ref_{referrer.referral_code}")
        assert newcomer.referred_by_id == 1
        assert newcomer.start_payload == f"ref_{referrer.referral_code}"
        other = (await users.register_contact(Contact(user_id=3, first_name="O"))).user
        await users.remember_start_payload(newcomer, f"ref_{other.referral_code}")
        assert newcomer.referred_by_id == 1  # never changed later


async def test_ban_is_audited_in_the_same_transaction(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        users = service(session)
        await users.register_contact(Contact(user_id=5, first_name="E"))
        banned = await users.set_ban(actor_id=None, user_id=5, banned=True, reason="spam")
        assert banned is not None
        assert banned.is_banned
        assert await users.set_ban(actor_id=None, user_id=404, banned=True) is None
    async with sessionmaker() as session:
        rows = (await session.execute(select(tables.audit_log))).all()
    assert [(r.action, r.target_id, r.details) for r in rows] == [
        ("user.ban", "5", {"reason": "spam"})
    ]
