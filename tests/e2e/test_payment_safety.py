"""No paid update can be lost: payments are never throttled, and whatever Telegram
delivered but we never recorded is recovered from its own record (getStarTransactions)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import select, update

from lumigram.bot.session import build_session
from lumigram.db import tables
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.runtime import BotApplication, verify_ledger
from tests.e2e.conftest import BotRunner
from tests.e2e.test_money import balances, books_balance, is_invoice, open_summary, payments


def pay_button(summary: ChatMessage) -> str:
    return next(label for label in summary.flat_buttons if label.startswith("Pay "))


async def job_invoice(user: Any, prompt: str) -> ChatMessage:
    summary = await open_summary(user, prompt)
    await user.press(pay_button(summary))
    invoice: ChatMessage = await user.wait_for(is_invoice)
    return invoice


async def package_invoice(user: Any, size: int) -> ChatMessage:
    await user.send_text("/topup")
    await user.wait_for_text("Top up")
    await user.press(
        next(b for b in user.last_bot_message.flat_buttons if b.startswith(f"{size} "))
    )
    invoice: ChatMessage = await user.wait_for(is_invoice)
    return invoice


def photos(user: Any, prompt: str) -> list[ChatMessage]:
    return [m for m in user.bot_messages if m.kind == "photo" and prompt in (m.text or "")]


async def test_a_payment_sent_inside_a_burst_is_never_throttled(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0, throttle_rate=0.05, throttle_burst=8)
    user = emulator.user(user_id=7001, first_name="Burst")
    await job_invoice(user, "a quiet harbour")  # five updates of the eight allowed
    for n in range(8):  # then a burst: the bucket is empty
        await user.send_text(f"hello {n}")
    await user.wait_for_text("Too many requests")
    paid = await user.pay()
    assert paid.ok, paid.error_message
    await user.wait_for_text("Payment received")
    await user.wait_for(lambda m: bool(photos(user, "quiet harbour")), timeout=15)
    [payment] = await payments(app, user.id)
    assert payment["telegram_payment_charge_id"] == paid.charge_id
    await books_balance(app)


async def test_a_lost_payment_update_is_recovered_while_running(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0, stars_reconcile_interval=0.5)
    user = emulator.user(user_id=7002, first_name="Lost")
    await job_invoice(user, "a red lighthouse")
    paid = await user.pay(deliver=False)  # charged, but the update never reaches the bot
    assert paid.ok
    await user.wait_for_text("Payment received", timeout=10)
    await user.wait_for(lambda m: bool(photos(user, "red lighthouse")), timeout=15)
    await user.wait_idle(quiet=1.2)  # a few more reconciliations: nothing happens twice
    assert len(photos(user, "red lighthouse")) == 1
    [payment] = await payments(app, user.id)
    assert payment["telegram_payment_charge_id"] == paid.charge_id
    await books_balance(app)


async def test_payments_lost_before_a_restart_are_recovered_at_start(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    """A job invoice, a credit package (with its referral bonus) and a subscription, each
    charged while its update was lost: after the restart everything is as if it arrived."""
    tiers = [{"id": "basic", "name": "Basic", "stars": 250, "images": 3}]
    settings: dict[str, Any] = {
        "free_trial_images": 0,
        "credit_packages": "10:100,50:450",
        "subscription_tiers": tiers,
        "stars_reconcile_interval": 3600,  # only the start-up reconciliation runs
    }
    app = await runner.start(**settings)
    referrer = emulator.user(user_id=7003, first_name="Ref")
    await referrer.send_text("/referrals")
    screen = await referrer.wait_for_text("Invite friends")
    link = next(word for word in (screen.text or "").split() if "start=ref_" in word)
    user = emulator.user(user_id=7004, first_name="Payer")
    await user.send_text(f"/start {link.split('start=', 1)[1]}")
    await user.wait_for_text("Hello")

    await job_invoice(user, "a green valley")
    assert (await user.pay(deliver=False)).ok
    await package_invoice(user, 50)
    assert (await user.pay(deliver=False)).ok
    await user.send_text("/subscription")
    screen = await user.wait_for_text("A subscription gives you")
    url = next(u for row in screen.urls for u in row if u)
    assert (await user.pay_link(url, deliver=False)).ok
    await user.wait_idle()
    assert await payments(app, user.id) == []  # nothing arrived

    app = await runner.restart(**settings)
    await user.wait_for(lambda m: bool(photos(user, "green valley")), timeout=15)
    await user.wait_for_text("+50 credits")
    await user.wait_for_text("Basic is active until")
    await user.wait_idle()
    assert len(await payments(app, user.id)) == 3
    money = await balances(app, user.id)
    assert money["credits"] == 50
    assert money["allowance"] == 3
    assert (await balances(app, referrer.id))["credits"] > 5  # 10 % of 50, and more
    await runner.restart(**settings)  # read again from the start: nothing changes
    await user.wait_idle(quiet=0.5)
    assert len(await payments(app, user.id)) == 3
    assert len(photos(user, "green valley")) == 1
    await books_balance(app)


async def test_a_refund_made_outside_lumigram_is_recorded(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0, credit_packages="10:100")
    user = emulator.user(user_id=7005, first_name="Out")
    await package_invoice(user, 10)
    paid = await user.pay()
    assert paid.ok
    assert paid.charge_id is not None
    await user.wait_for_text("+10 credits")
    # The operator refunds it with another tool (its own connection to the Bot API):
    # the bot gets a refunded_payment update.
    async with Bot(runner.token, session=build_session(emulator.base_url)) as other:
        await other.refund_star_payment(user.id, paid.charge_id)
    for _ in range(100):
        [payment] = await payments(app, user.id)
        if payment["status"] == "refunded":
            break
        await asyncio.sleep(0.05)
    assert payment["status"] == "refunded"
    assert await issues(app) == ["refunded outside Lumigram"]
    await books_balance(app)


async def test_an_unmatched_refund_is_kept_for_the_operator(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    """A refund in Telegram's record of a payment this database never saw (restored from
    an old backup): kept and reported, once, however often it is read."""
    app = await runner.start(free_trial_images=0)
    user = emulator.user(user_id=7006, first_name="Odd")
    await user.send_text("/start")
    await user.wait_for_text("Hello")
    emulator.bot(runner.token).transactions.append(
        {
            "id": "stxUNKNOWN",
            "amount": 7,
            "date": 1_700_000_000,
            "receiver": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": {"id": user.id, "is_bot": False, "first_name": "Odd"},
                "invoice_payload": "someone else's",
            },
        }
    )
    for _ in range(2):
        await app.reconcile_stars(settle_after=0)
    assert await issues(app) == ["a refund of a payment not recorded here"]


async def issues(app: BotApplication) -> list[str]:
    async with app.sessionmaker() as session:
        rows = await session.execute(select(tables.star_transaction_issues.c.problem))
        return [problem.split(":")[0] for (problem,) in rows.all()]


@pytest.mark.books_tampered
async def test_ledger_verify_reports_a_paid_job_that_never_started(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    """What a lost payment used to leave behind: a recorded payment whose job still waits
    for it. `lumigram ledger verify` names it."""
    app = await runner.start(free_trial_images=0)
    user = emulator.user(user_id=7007, first_name="Stuck")
    await job_invoice(user, "a stuck mill")
    assert (await user.pay()).ok
    await user.wait_for(lambda m: bool(photos(user, "stuck mill")), timeout=15)
    await user.wait_idle()
    assert await verify_ledger(app.settings) == []
    async with app.sessionmaker() as session:
        await session.execute(
            update(tables.holds).values(account="credits")  # as if the Stars never held it
        )
        await session.execute(update(tables.jobs).values(status="awaiting_payment"))
        await session.commit()
    problems = await verify_ledger(app.settings)
    assert any("its generation neither ran nor was refunded" in p for p in problems), problems
