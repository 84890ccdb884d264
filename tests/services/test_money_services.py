"""Money use cases one by one: refunds, pre-checkout answers, subscriptions, the reconciler."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.catalog import load_catalog
from lumigram.config import load_settings
from lumigram.container import Infrastructure, Services, billing_for
from lumigram.db import tables
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.domain.jobs import Job
from lumigram.domain.money import MAX_REFUND_ATTEMPTS, Account, EntryKind
from lumigram.domain.subscriptions import Subscription, Tier
from lumigram.services.payments import Refusal
from lumigram.services.ports import Price, StarsRefusedError
from lumigram.services.users import Contact
from tests.conftest import VALID_TOKEN
from tests.services.test_ledger import add_job

Sessions = async_sessionmaker[AsyncSession]
# Later than the real clock, with which the billing seam stamps the refunds it schedules.
START = datetime.now(UTC) + timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FakeStars:
    """Our StarsGateway port, answering as told."""

    def __init__(self) -> None:
        self.refunds: list[str] = []
        self.refuse: str | None = None
        self.already = False
        self.unreachable = False

    async def refund(self, user_id: int, charge_id: str) -> None:
        self.refunds.append(charge_id)
        if self.unreachable:
            raise ConnectionError("Telegram unreachable")
        if self.refuse:
            raise StarsRefusedError(self.refuse, already_done=self.already)

    async def set_subscription_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None:
        return None

    async def subscription_link(self, tier: Tier, payload: str, language: str) -> str:
        return f"https://t.me/$invoice-{tier.id}"


class Notes:
    """Our MoneyNotifier port, remembering what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[tuple[str, int]] = []

    async def refunded(self, user_id: int, stars: int, job_id: int | None) -> None:
        self.said.append(("refunded", user_id))

    async def subscription_expiring(self, subscription: Subscription, tier: Tier | None) -> None:
        self.said.append(("expiring", subscription.user_id))

    async def subscription_ended(self, subscription: Subscription, tier: Tier | None) -> None:
        self.said.append(("ended", subscription.user_id))

    async def allowance_used_up(self, subscription: Subscription, tier: Tier | None) -> None:
        self.said.append(("used_up", subscription.user_id))


class World:
    def __init__(self, sessions: Sessions, database_url: str, **settings: Any) -> None:
        self.sessions = sessions
        self.clock = Clock()
        config = load_settings(bot_token=VALID_TOKEN, database_url=database_url, **settings)
        self.infra = Infrastructure(
            settings=config,
            catalog=load_catalog(),
            providers={},
            storage=None,  # type: ignore[arg-type]
            dispatcher=None,  # type: ignore[arg-type]
        )
        self.stars = FakeStars()
        self.notes = Notes()

    def services(self, session: AsyncSession) -> Services:
        services = Services(session, self.infra)
        for name in ("subscriptions", "payments", "refunds"):
            getattr(services, name)._clock = self.clock
        return services

    async def register(self, user_id: int, referrer_code: str | None = None) -> Any:
        async with self.sessions() as session:
            services = self.services(session)
            registration = await services.users.register_contact(Contact(user_id, "U"))
            if referrer_code:
                await services.users.remember_start_payload(
                    registration.user, f"ref_{referrer_code}"
                )
            return registration.user

    async def balances(self, user_id: int) -> dict[str, int]:
        async with self.sessions() as session:
            return await LedgerRepository(session).balances(user_id)

    async def pay(self, user_id: int, charge: str, payload: str, amount: int, **extra: Any) -> Any:
        async with self.sessions() as session:
            return await self.services(session).payments.record(
                user_id=user_id,
                charge_id=charge,
                payload=payload,
                currency="XTR",
                total_amount=amount,
                **extra,
            )

    async def job_waiting_for_payment(self, user_id: int) -> tuple[Job, str]:
        """A job nothing could pay for, and the payload of its 2-Star invoice."""
        job_id = await add_job(self.sessions, user_id)
        async with self.sessions() as session:
            services = self.services(session)
            job = await session.get(Job, job_id)
            assert job is not None
            paid = await billing_for(session).reserve(job, Price(1, 5, 2))
            assert not paid
            job.status = "awaiting_payment"
            await session.commit()
            return job, services.payments.job_invoice(job, 2).payload


@pytest.fixture
def world(sessionmaker: Sessions, database_url: str) -> Iterator[World]:
    return World(sessionmaker, database_url, free_trial_images=0)


async def test_trial_is_granted_once_at_registration(
    sessionmaker: Sessions, database_url: str
) -> None:
    world = World(sessionmaker, database_url, free_trial_images=3)
    await world.register(7001)
    await world.register(7001)
    assert (await world.balances(7001))["trial"] == 3


async def test_failed_paid_job_is_refunded_after_refusals(world: World) -> None:
    user = await world.register(7002)
    _job, payload = await world.job_waiting_for_payment(user.id)
    recorded = await world.pay(user.id, "ch-1", payload, 2)
    assert recorded.job is not None
    assert (await world.balances(user.id))["stars:held"] == 2
    async with world.sessions() as session:  # the worker fails the job
        await billing_for(session).release(recorded.job)
        await session.commit()
    assert (await world.balances(user.id))["stars"] == 0  # taken out, refund pending
    world.stars.refuse = "Bad Request: try later"
    async with world.sessions() as session:
        done = await world.services(session).refunds.process_due(world.stars, world.notes)
    assert done == 0
    async with world.sessions() as session:  # not due again before its back-off
        assert await world.services(session).refunds.process_due(world.stars, world.notes) == 0
    assert world.stars.refunds == ["ch-1"]
    world.stars.refuse = None
    world.clock.now += timedelta(minutes=2)
    async with world.sessions() as session:
        assert await world.services(session).refunds.process_due(world.stars, world.notes) == 1
    assert world.notes.said == [("refunded", user.id)]
    async with world.sessions() as session:
        row = (await session.execute(select(tables.payments))).mappings().one()
    assert (row["status"], row["refund_state"], row["refund_attempts"]) == ("refunded", "done", 1)


async def test_a_refund_telegram_keeps_refusing_goes_back_to_the_user(world: World) -> None:
    user = await world.register(7003)
    _job, payload = await world.job_waiting_for_payment(user.id)
    recorded = await world.pay(user.id, "ch-2", payload, 2)
    async with world.sessions() as session:
        await billing_for(session).release(recorded.job)
        await session.commit()
    world.stars.refuse = "Bad Request: CHARGE_NOT_FOUND"
    for _ in range(MAX_REFUND_ATTEMPTS):
        world.clock.now += timedelta(hours=7)
        async with world.sessions() as session:
            await world.services(session).refunds.process_due(world.stars, world.notes)
    assert len(world.stars.refunds) == MAX_REFUND_ATTEMPTS
    assert (await world.balances(user.id))["stars"] == 2  # kept, not lost
    async with world.sessions() as session:
        row = (await session.execute(select(tables.payments))).mappings().one()
        assert (row["status"], row["refund_state"]) == ("paid", "failed")
        world.clock.now += timedelta(days=1)
        assert await world.services(session).refunds.process_due(world.stars, None) == 0


async def test_no_answer_never_gives_the_stars_back(world: World) -> None:
    """A refund whose answer was lost may have happened: it is retried, never undone."""
    user = await world.register(7011)
    _job, payload = await world.job_waiting_for_payment(user.id)
    recorded = await world.pay(user.id, "ch-6", payload, 2)
    async with world.sessions() as session:
        await billing_for(session).release(recorded.job)
        await session.commit()
    world.stars.unreachable = True
    for _ in range(MAX_REFUND_ATTEMPTS + 3):
        world.clock.now += timedelta(hours=7)
        async with world.sessions() as session:
            await world.services(session).refunds.process_due(world.stars, None)
    assert len(world.stars.refunds) == MAX_REFUND_ATTEMPTS + 3
    assert (await world.balances(user.id))["stars"] == 0
    async with world.sessions() as session:
        row = (await session.execute(select(tables.payments))).mappings().one()
    assert row["refund_state"] == "pending"
    world.stars.unreachable = False
    world.stars.refuse, world.stars.already = "Bad Request: CHARGE_ALREADY_REFUNDED", True
    world.clock.now += timedelta(hours=7)
    async with world.sessions() as session:
        assert await world.services(session).refunds.process_due(world.stars, None) == 1


async def test_already_refunded_counts_as_done(world: World) -> None:
    user = await world.register(7004)
    _job, payload = await world.job_waiting_for_payment(user.id)
    recorded = await world.pay(user.id, "ch-3", payload, 2)
    async with world.sessions() as session:
        await billing_for(session).release(recorded.job)
        await session.commit()
    world.stars.refuse, world.stars.already = "Bad Request: CHARGE_ALREADY_REFUNDED", True
    async with world.sessions() as session:
        assert await world.services(session).refunds.process_due(world.stars, None) == 1


async def test_payment_for_a_job_that_is_gone_is_refunded(world: World) -> None:
    user = await world.register(7005)
    _job, payload = await world.job_waiting_for_payment(user.id)
    async with world.sessions() as session:
        await world.services(session).generation.cancel_unpaid(user.id)
    recorded = await world.pay(user.id, "ch-4", payload, 2)
    assert recorded.refunded
    assert recorded.job is None
    async with world.sessions() as session:
        assert await world.services(session).refunds.process_due(world.stars, None) == 1
    assert world.stars.refunds == ["ch-4"]


async def test_pre_checkout_refusals(world: World) -> None:
    user = await world.register(7006)
    other = await world.register(7007)
    _job, payload = await world.job_waiting_for_payment(user.id)
    async with world.sessions() as session:
        services = world.services(session)
        check = services.payments.check
        assert await check(user, payload=payload, currency="XTR", total_amount=2) is None
        assert await check(user, payload="nope", currency="XTR", total_amount=2) is Refusal.UNKNOWN
        assert await check(other, payload=payload, currency="XTR", total_amount=2) is (
            Refusal.UNKNOWN
        )
        assert await check(user, payload=payload, currency="USD", total_amount=2) is (
            Refusal.UNKNOWN
        )
        offer = services.payments.package_invoice(user.id, "c100")
        assert offer is not None
        _, invoice = offer
        assert await check(user, payload=invoice.payload, currency="XTR", total_amount=100) is None
        assert await check(user, payload=invoice.payload, currency="XTR", total_amount=90) is (
            Refusal.STALE
        )
        user.is_banned = True
        assert await check(user, payload=payload, currency="XTR", total_amount=2) is (
            Refusal.BANNED
        )
        user.is_banned = False
    await world.pay(user.id, "ch-5", payload, 2)
    async with world.sessions() as session:
        check = world.services(session).payments.check
        assert await check(user, payload=payload, currency="XTR", total_amount=2) is Refusal.PAID


async def test_subscription_reminders_expiry_and_a_second_purchase_refused(world: World) -> None:
    user = await world.register(7008)
    tier = world.infra.settings.tiers()[0]
    async with world.sessions() as session:
        payload = world.services(session).payments.subscription_invoice(user.id, tier).payload
    ends = START + timedelta(days=30)
    recorded = await world.pay(
        user.id,
        "sub-1",
        payload,
        tier.stars,
        subscription_expires_at=ends,
        is_recurring=True,
        is_first_recurring=True,
    )
    assert recorded.tier == tier
    assert (await world.balances(user.id))["allowance"] == tier.images
    async with world.sessions() as session:
        check = world.services(session).payments.check
        refusal = await check(user, payload=payload, currency="XTR", total_amount=tier.stars)
        assert refusal is Refusal.SUBSCRIBED

    async def sweep() -> None:
        async with world.sessions() as session:
            await world.services(session).subscriptions.sweep(world.notes)

    await sweep()
    assert world.notes.said == []
    world.clock.now = ends - timedelta(days=2)
    await sweep()
    await sweep()
    assert world.notes.said == [("expiring", user.id)]  # once
    async with world.sessions() as session:
        await world.services(session).subscriptions.on_update(user.id, "canceled")
    world.clock.now = ends + timedelta(seconds=1)  # not renewing: no grace
    await sweep()
    await sweep()
    assert world.notes.said[-1] == ("ended", user.id)
    assert world.notes.said.count(("ended", user.id)) == 1
    assert (await world.balances(user.id))["allowance"] == 0


async def test_used_up_allowance_is_told_once_per_period(world: World) -> None:
    user = await world.register(7009)
    tier = world.infra.settings.tiers()[0]
    async with world.sessions() as session:
        payload = world.services(session).payments.subscription_invoice(user.id, tier).payload
    await world.pay(
        user.id,
        "sub-2",
        payload,
        tier.stars,
        subscription_expires_at=START + timedelta(days=30),
        is_recurring=True,
        is_first_recurring=True,
    )
    async with world.sessions() as session:
        services = world.services(session)
        await services.ledger.post(
            user.id, Account.ALLOWANCE.value, -tier.images, EntryKind.ADMIN_ADJUSTMENT, "spend"
        )
        await session.commit()
        await services.subscriptions.sweep(world.notes)
        await services.subscriptions.sweep(world.notes)
    assert world.notes.said == [("used_up", user.id)]


async def test_reconciler_settles_holds_left_open_by_a_crash(world: World) -> None:
    user = await world.register(7010)
    async with world.sessions() as session:
        services = world.services(session)
        await services.ledger.post(user.id, "credits", 10, EntryKind.TOP_UP, "t-7010")
        await session.commit()
    delivered, failed = (
        await add_job(world.sessions, user.id),
        await add_job(world.sessions, user.id),
    )
    async with world.sessions() as session:
        services = world.services(session)
        for job_id in (delivered, failed):
            job = await session.get(Job, job_id)
            assert job is not None
            assert await billing_for(session).reserve(job, Price(1, 3, 1))
        await session.commit()
        # The crash: the jobs' final states were written, their holds never settled.
        await session.execute(
            update(tables.jobs)
            .where(tables.jobs.c.id == delivered)
            .values(status="succeeded", result_files=[{"key": "k", "mime_type": "image/png"}])
        )
        await session.execute(
            update(tables.jobs).where(tables.jobs.c.id == failed).values(status="failed")
        )
        await session.commit()
        result = await world.services(session).reconciler.run()
        assert (result.captured, result.released) == (1, 1)
        assert (await world.services(session).reconciler.run()).captured == 0
    assert (await world.balances(user.id))["credits"] == 7
    assert (await world.balances(user.id))["credits:held"] == 0
