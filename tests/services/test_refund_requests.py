"""/refund offers only generations paid with credits or Stars (issue 8, item 5)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from lumigram.container import billing_for
from lumigram.db import tables
from lumigram.domain.jobs import Job
from lumigram.domain.money import Account, EntryKind
from lumigram.services.ports import Price
from tests.services.test_ledger import add_job
from tests.services.test_money_services import Sessions, World

PRICE = Price(outputs=1, credits=1, stars=2)


@pytest.fixture
def world(sessionmaker: Sessions, database_url: str) -> World:
    return World(sessionmaker, database_url, free_trial_images=1)


async def delivered_job(world: World, user_id: int) -> int:
    """A job paid from whatever the user has (trial, allowance, credits, Stars), delivered."""
    job_id = await add_job(world.sessions, user_id)
    async with world.sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        assert await billing_for(session).reserve(job, PRICE)
        await billing_for(session).capture(job, 1)
        job.status = "succeeded"
        await session.commit()
    return job_id


async def paid_by_invoice(world: World, user_id: int, charge: str) -> int:
    """A job bought with a Stars invoice, delivered."""
    job, payload = await world.job_waiting_for_payment(user_id)
    recorded = await world.pay(user_id, charge, payload, PRICE.stars)
    assert recorded.job is not None
    async with world.sessions() as session:
        paid = await session.get(Job, job.id)
        assert paid is not None
        await billing_for(session).capture(paid, 1)
        paid.status = "succeeded"
        await session.commit()
    assert job.id is not None
    return job.id


async def post(world: World, user_id: int, account: Account, amount: int, key: str) -> None:
    async with world.sessions() as session:
        await world.services(session).ledger.post(
            user_id, account.value, amount, EntryKind.ADMIN_ADJUSTMENT, key
        )
        await session.commit()


async def test_only_credits_and_stars_generations_are_offered(world: World) -> None:
    user = await world.register(7101)
    free = await delivered_job(world, user.id)  # the one free image
    await post(world, user.id, Account.ALLOWANCE, 1, "grant-7101")
    allowance = await delivered_job(world, user.id)
    await post(world, user.id, Account.CREDITS, 5, "top-up-7101")
    by_credits = await delivered_job(world, user.id)
    by_stars = await paid_by_invoice(world, user.id, "ch-7101")
    # A failed generation costs nothing (its hold was released): nothing to refund.
    failed = await add_job(world.sessions, user.id)
    async with world.sessions() as session:
        job = await session.get(Job, failed)
        assert job is not None
        assert await billing_for(session).reserve(job, PRICE)
        await billing_for(session).release(job)
        job.status = "failed"
        await session.commit()

    async with world.sessions() as session:
        items = await world.services(session).refunds.refundable(user.id)
    assert [item.job.id for item in items] == [by_stars, by_credits]  # newest first
    by_job = {item.job.id: item for item in items}
    assert (by_job[by_stars].account, by_job[by_stars].amount) == (Account.STARS, PRICE.stars)
    assert by_job[by_stars].payment is not None
    assert by_job[by_stars].payment.telegram_payment_charge_id == "ch-7101"
    assert (by_job[by_credits].account, by_job[by_credits].amount) == (
        Account.CREDITS,
        PRICE.credits,
    )
    assert by_job[by_credits].payment is None

    async with world.sessions() as session:
        refunds = world.services(session).refunds
        assert await refunds.request(user.id, free, "it was free") is None
        assert await refunds.request(user.id, allowance, "part of my plan") is None
        assert await refunds.request(user.id, failed, "it failed") is None
        request = await refunds.request(user.id, by_stars, "wrong colours")
        assert request is not None
        assert request.payment_id == by_job[by_stars].payment.id
        again = await refunds.request(user.id, by_stars, "still wrong")
        assert again is not None
        assert again.id == request.id
        credit_request = await refunds.request(user.id, by_credits, "blurry")
        assert credit_request is not None
        assert credit_request.payment_id is None


async def test_a_user_with_only_free_images_has_nothing_to_refund(world: World) -> None:
    user = await world.register(7102)
    await delivered_job(world, user.id)
    async with world.sessions() as session:
        assert await world.services(session).refunds.refundable(user.id) == []


async def test_the_limit_counts_only_refundable_generations(world: World) -> None:
    user = await world.register(7103)
    await post(world, user.id, Account.CREDITS, 2, "top-up-7103")
    paid = [await delivered_job(world, user.id) for _ in range(2)]  # trial first, then credits
    await post(world, user.id, Account.TRIAL, 3, "more-trial-7103")
    for _ in range(3):
        await delivered_job(world, user.id)  # newer, but free
    async with world.sessions() as session:
        items = await world.services(session).refunds.refundable(user.id, limit=1)
    assert [item.job.id for item in items] == [paid[1]]


@pytest.mark.books_tampered  # the payment is marked refunded without its ledger rows
async def test_a_generation_whose_payment_was_refunded_is_not_offered(world: World) -> None:
    user = await world.register(7104)
    await delivered_job(world, user.id)  # uses the free image
    job_id = await paid_by_invoice(world, user.id, "ch-7104")
    async with world.sessions() as session:
        assert [i.job.id for i in await world.services(session).refunds.refundable(user.id)] == [
            job_id
        ]
        await session.execute(
            update(tables.payments)
            .where(tables.payments.c.telegram_payment_charge_id == "ch-7104")
            .values(status="refunded")
        )
        await session.commit()
    async with world.sessions() as session:
        assert await world.services(session).refunds.refundable(user.id) == []
