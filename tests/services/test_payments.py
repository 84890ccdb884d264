"""Recording Stars payments: exactly once, whatever Telegram replays."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.payments import PaymentRepository
from lumigram.db.repositories.subscriptions import SubscriptionRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.domain.invoices import InvoiceClaim, Product, derive_secret, encode_payload
from lumigram.domain.money import UNMATCHED, Account, parse_packages
from lumigram.services.generation import FREE_FOR_ALL
from lumigram.services.ledger import Ledger
from lumigram.services.payments import PaymentService, ReferralPolicy
from lumigram.services.subscriptions import SubscriptionService

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = derive_secret("123456789:AAEhBOweik6ad6PsVMRxjeQKj3oXUbuPvXs")
PACKAGES = parse_packages("10:100,50:450")
CREDITS = Account.CREDITS.value
_ids = iter(range(100_000, 10_000_000, 2))


def service(session: AsyncSession, referral: ReferralPolicy | None = None) -> PaymentService:
    ledger = Ledger(LedgerRepository(session))
    subscriptions = SubscriptionService(
        SubscriptionRepository(session), ledger, session, tiers=(), free_perks=FREE_FOR_ALL
    )
    return PaymentService(
        PaymentRepository(session),
        UserRepository(session),
        JobRepository(session),
        ledger,
        subscriptions,
        session,
        secret=SECRET,
        packages=PACKAGES,
        referral=referral or ReferralPolicy(),
    )


def payload(user_id: int, package: str = "c10") -> str:
    return encode_payload(InvoiceClaim(Product.PACKAGE, package, user_id, 1_700_000_000), SECRET)


async def add_user(sessions: Sessions, user_id: int, referred_by: int | None = None) -> None:
    async with sessions() as session:
        await session.execute(
            tables.users.insert().values(
                id=user_id,
                language="en",
                referral_code=f"{user_id:08d}"[-8:],
                referred_by_id=referred_by,
                created_at=NOW,
                last_seen_at=NOW,
            )
        )
        await session.commit()


async def balance(sessions: Sessions, user_id: int) -> int:
    async with sessions() as session:
        return (await LedgerRepository(session).balances(user_id))[CREDITS]


async def pay(sessions: Sessions, user_id: int, charge: str, **kwargs: object) -> bool:
    async with sessions() as session:
        recorded = await service(session, **kwargs).record(  # type: ignore[arg-type]
            user_id=user_id,
            charge_id=charge,
            payload=payload(user_id),
            currency="XTR",
            total_amount=100,
        )
    return not recorded.duplicate


async def test_a_payment_credits_once_and_pays_the_referrer_once(sessionmaker: Sessions) -> None:
    referrer, buyer = next(_ids), next(_ids)
    await add_user(sessionmaker, referrer)
    await add_user(sessionmaker, buyer, referred_by=referrer)
    assert await pay(sessionmaker, buyer, "ch-1")
    for _ in range(3):
        assert not await pay(sessionmaker, buyer, "ch-1")  # replayed updates
    assert await balance(sessionmaker, buyer) == 10
    assert await balance(sessionmaker, referrer) == 1  # 10 % of 10 credits
    assert await pay(sessionmaker, buyer, "ch-2")
    assert await balance(sessionmaker, referrer) == 2
    async with sessionmaker() as session:
        assert await LedgerRepository(session).discrepancies() == []


async def test_first_payment_only_policy(sessionmaker: Sessions) -> None:
    referrer, buyer = next(_ids), next(_ids)
    await add_user(sessionmaker, referrer)
    await add_user(sessionmaker, buyer, referred_by=referrer)
    first_only = ReferralPolicy(percent=50, every_payment=False)
    await pay(sessionmaker, buyer, "f-1", referral=first_only)
    await pay(sessionmaker, buyer, "f-2", referral=first_only)
    assert await balance(sessionmaker, referrer) == 5


async def test_concurrent_deliveries_of_one_payment_credit_once(sessionmaker: Sessions) -> None:
    buyer = next(_ids)
    await add_user(sessionmaker, buyer)
    results = await asyncio.gather(*(pay(sessionmaker, buyer, "same") for _ in range(8)))
    assert sum(results) == 1
    assert await balance(sessionmaker, buyer) == 10


@pytest.mark.parametrize(
    ("make_payload", "amount"),
    [
        (lambda user: "forged|payload", 100),
        (lambda user: payload(user + 1), 100),  # someone else's invoice
        (lambda user: payload(user), 99),  # the price does not match
        (lambda user: payload(user, "c999"), 100),  # no such package
    ],
)
async def test_unmatched_payments_are_kept_for_the_operator(
    sessionmaker: Sessions,
    caplog: pytest.LogCaptureFixture,
    make_payload,
    amount,  # type: ignore[no-untyped-def]
) -> None:
    buyer = next(_ids)
    await add_user(sessionmaker, buyer)
    with caplog.at_level(logging.ERROR):
        async with sessionmaker() as session:
            recorded = await service(session).record(
                user_id=buyer,
                charge_id=f"u-{buyer}",
                payload=make_payload(buyer),
                currency="XTR",
                total_amount=amount,
            )
    assert recorded.payment.product == UNMATCHED
    assert await balance(sessionmaker, buyer) == 0
    assert "OPERATOR ALERT" in caplog.text


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(0, 6), max_size=20))
async def test_replaying_any_payment_any_number_of_times_changes_nothing(
    sessionmaker: Sessions, charges: list[int]
) -> None:
    referrer, buyer = next(_ids), next(_ids)
    await add_user(sessionmaker, referrer)
    await add_user(sessionmaker, buyer, referred_by=referrer)
    for charge in charges:
        await pay(sessionmaker, buyer, f"h-{buyer}-{charge}")
    distinct = len(set(charges))
    assert await balance(sessionmaker, buyer) == 10 * distinct
    assert await balance(sessionmaker, referrer) == distinct
    async with sessionmaker() as session:
        assert await LedgerRepository(session).discrepancies() == []
