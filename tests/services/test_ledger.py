"""The ledger against the real database (SQLite, or PostgreSQL with LUMIGRAM_TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.domain.money import Account, EntryKind, Funding, HoldStatus, InsufficientFundsError
from lumigram.services.ledger import Ledger, Reference

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CREDITS = Account.CREDITS.value


async def add_user(sessions: Sessions, user_id: int) -> None:
    async with sessions() as session:
        await session.execute(
            tables.users.insert().values(
                id=user_id,
                language="en",
                referral_code=f"c{user_id:07d}"[-8:],
                created_at=NOW,
                last_seen_at=NOW,
            )
        )
        await session.commit()


async def add_job(sessions: Sessions, user_id: int) -> int:
    async with sessions() as session:
        result = await session.execute(
            tables.jobs.insert().values(
                user_id=user_id,
                reply_to=str(user_id),
                language="en",
                model_id="demo",
                provider="demo",
                provider_model="demo-art",
                mode="custom",
                prompt="p",
                final_prompt="p",
                settings={},
                reference_files=[],
                status="queued",
                step="submit",
                next_attempt_at=NOW,
                result_files=[],
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await session.commit()
        return int(result.inserted_primary_key[0])


async def test_post_is_idempotent_and_balance_follows(sessionmaker: Sessions) -> None:
    await add_user(sessionmaker, 1)
    async with sessionmaker() as session:
        ledger = Ledger(LedgerRepository(session))
        assert await ledger.post(1, CREDITS, 100, EntryKind.TOP_UP, "pay:abc")
        assert not await ledger.post(1, CREDITS, 100, EntryKind.TOP_UP, "pay:abc")  # replay
        await session.commit()
        assert (await ledger.balances(1))[CREDITS] == 100
        assert await ledger.discrepancies() == []


async def test_overdraft_refused_and_nothing_written(sessionmaker: Sessions) -> None:
    await add_user(sessionmaker, 2)
    async with sessionmaker() as session:
        ledger = Ledger(LedgerRepository(session))
        await ledger.post(2, CREDITS, 10, EntryKind.TOP_UP, "t1")
        with pytest.raises(InsufficientFundsError) as caught:
            await ledger.post(2, CREDITS, -11, EntryKind.HOLD, "spend")
        assert caught.value.available == 10
        # The refused key is still free: the row was rolled back with the savepoint.
        assert await ledger.post(2, CREDITS, -10, EntryKind.HOLD, "spend")
        await session.commit()
        assert (await ledger.balances(2))[CREDITS] == 0
        assert await ledger.discrepancies() == []


async def test_hold_capture_partial_and_release(sessionmaker: Sessions) -> None:
    await add_user(sessionmaker, 3)
    job_a, job_b = await add_job(sessionmaker, 3), await add_job(sessionmaker, 3)
    async with sessionmaker() as session:
        ledger = Ledger(LedgerRepository(session))
        await ledger.post(3, CREDITS, 20, EntryKind.TOP_UP, "t")
        await ledger.hold(job_a, 3, Funding(Account.CREDITS, 9), units=3)
        await ledger.hold(job_a, 3, Funding(Account.CREDITS, 9), units=3)  # retried: no-op
        await ledger.hold(job_b, 3, Funding(Account.CREDITS, 6), units=1)
        assert (await ledger.balances(3))[CREDITS] == 5
        hold = await ledger.capture(job_a, delivered=2)  # 2 of 3 images: 6 of 9
        assert hold is not None
        assert (hold.status, hold.captured) == (HoldStatus.CAPTURED.value, 6)
        await ledger.capture(job_a, delivered=2)  # retried: no-op
        await ledger.release(job_b)
        await ledger.release(job_b)
        await session.commit()
        balances = await ledger.balances(3)
        assert balances[CREDITS] == 20 - 6
        assert balances[Account.CREDITS.held] == 0
        assert await ledger.discrepancies() == []


@pytest.mark.books_tampered
async def test_verify_finds_a_tampered_balance(sessionmaker: Sessions) -> None:
    await add_user(sessionmaker, 4)
    async with sessionmaker() as session:
        ledger = Ledger(LedgerRepository(session))
        await ledger.post(4, CREDITS, 7, EntryKind.ADMIN_ADJUSTMENT, "adj", Reference(admin_id=1))
        await session.commit()
        await session.execute(
            update(tables.balances).where(tables.balances.c.user_id == 4).values(amount=8)
        )
        await session.commit()
        problems = await ledger.discrepancies()
    assert problems == ["user 4 credits: balance 8 but ledger sums to 7"]


async def test_database_refuses_a_negative_balance_even_without_the_code(
    sessionmaker: Sessions,
) -> None:
    await add_user(sessionmaker, 5)
    async with sessionmaker() as session:
        await Ledger(LedgerRepository(session)).post(5, CREDITS, 1, EntryKind.TOP_UP, "t")
        await session.commit()
        with pytest.raises(IntegrityError, match=r"(?i)check|constraint"):
            await session.execute(text("UPDATE balances SET amount = -1 WHERE user_id = 5"))


async def test_fifty_concurrent_spenders_cannot_overdraw(sessionmaker: Sessions) -> None:
    await add_user(sessionmaker, 6)
    async with sessionmaker() as session:
        await Ledger(LedgerRepository(session)).post(6, CREDITS, 30, EntryKind.TOP_UP, "t")
        await session.commit()

    async def spend(i: int) -> bool:
        async with sessionmaker() as session:
            try:
                await Ledger(LedgerRepository(session)).post(
                    6, CREDITS, -1, EntryKind.HOLD, f"s{i}"
                )
                await session.commit()
                return True
            except InsufficientFundsError:
                await session.rollback()
                return False

    results = await asyncio.gather(*(spend(i) for i in range(50)))
    assert sum(results) == 30
    async with sessionmaker() as session:
        ledger = Ledger(LedgerRepository(session))
        assert (await ledger.balances(6))[CREDITS] == 0
        assert await ledger.discrepancies() == []


operation = st.one_of(
    st.tuples(st.just("top_up"), st.integers(1, 50), st.integers(0, 5)),  # amount, charge id
    st.tuples(st.just("hold"), st.integers(1, 30), st.integers(0, 3)),  # amount, job slot
    st.tuples(st.just("capture"), st.integers(0, 3), st.integers(0, 3)),  # delivered, job slot
    st.tuples(st.just("release"), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("crash"), st.integers(1, 50), st.integers(0, 5)),  # a top-up rolled back
)
_user_ids = iter(range(10_000, 1_000_000))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, max_size=25))
async def test_any_interleaving_keeps_the_books_straight(
    sessionmaker: Sessions, operations: list[tuple[str, int, int]]
) -> None:
    user_id = next(_user_ids)
    await add_user(sessionmaker, user_id)
    jobs = [await add_job(sessionmaker, user_id) for _ in range(4)]
    credited: set[int] = set()
    expected = 0  # what the user should own, held or not
    settled: dict[int, int] = {}  # job slot -> amount finally charged
    for name, value, slot in operations:
        async with sessionmaker() as session:
            ledger = Ledger(LedgerRepository(session))
            if name in ("top_up", "crash"):
                if await ledger.post(user_id, CREDITS, value, EntryKind.TOP_UP, f"charge:{slot}"):
                    if name == "crash":
                        await session.rollback()  # the process died before the commit
                        continue
                    assert slot not in credited
                    credited.add(slot)
                    expected += value
            elif name == "hold":
                try:
                    await ledger.hold(jobs[slot], user_id, Funding(Account.CREDITS, value), units=3)
                except InsufficientFundsError:
                    await session.rollback()
                    continue
            elif name == "capture":
                hold = await ledger.capture(jobs[slot], delivered=value)
                if hold is not None and slot not in settled:
                    settled[slot] = hold.captured
                    expected -= hold.captured
            else:
                hold = await ledger.release(jobs[slot])
                if hold is not None and slot not in settled:
                    settled[slot] = 0
            await session.commit()
        async with sessionmaker() as session:
            ledger = Ledger(LedgerRepository(session))
            balances = await ledger.balances(user_id)
            assert all(amount >= 0 for amount in balances.values())
            assert balances[CREDITS] + balances[Account.CREDITS.held] == expected
            assert await ledger.discrepancies() == []
