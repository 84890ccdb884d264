"""Money end to end: the real bot, the emulator's Stars payments, the demo provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from lumigram.db import tables
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.runtime import BotApplication
from tests.e2e.conftest import BotRunner


async def open_summary(user: Any, prompt: str, mode: str = "Nature") -> ChatMessage:
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press(mode)
    await user.wait_for_text("Send me what to draw")
    await user.send_text(prompt)
    summary: ChatMessage = await user.wait_for_text("Check your request")
    return summary


def is_invoice(message: ChatMessage) -> bool:
    return message.invoice is not None


async def balances(app: BotApplication, user_id: int) -> dict[str, int]:
    async with app.sessionmaker() as session:
        return await LedgerRepository(session).balances(user_id)


async def books_balance(app: BotApplication) -> None:
    async with app.sessionmaker() as session:
        assert await LedgerRepository(session).discrepancies() == []


async def payments(app: BotApplication, user_id: int) -> list[Any]:
    async with app.sessionmaker() as session:
        rows = await session.execute(
            select(tables.payments).where(tables.payments.c.user_id == user_id)
        )
        return list(rows.mappings())


async def test_trial_used_up_then_pay_per_image_and_replays_change_nothing(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=1)
    user = emulator.user(user_id=5001, first_name="Ann")
    summary = await open_summary(user, "a calm lake")
    assert "Free: uses 1 of your 1 free image" in (summary.text or "")
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    assert (await balances(app, user.id))["trial"] == 0

    summary = await open_summary(user, "a calm lake at night")
    assert "Pay 1 ⭐" in summary.flat_buttons
    await user.press("Pay 1 ⭐")
    await user.wait_for_text("No free images or credits left")
    await user.wait_for_text("Terms of payment")  # before the first purchase
    invoice = await user.wait_for(is_invoice)
    assert invoice.invoice is not None
    assert invoice.invoice["total_amount"] == 1  # 1 credit at 1 ⭐ per credit (the dearest package)
    paid = await user.pay()
    assert paid.ok, paid.error_message
    await user.wait_for_text("Payment received")
    await user.wait_for(lambda m: m.kind == "photo" and "night" in (m.text or ""), timeout=15)
    await user.wait_idle()
    photos = [m for m in user.bot_messages if m.kind == "photo"]
    assert len(photos) == 2
    stars_after = await balances(app, user.id)
    assert stars_after["stars"] == 0
    assert stars_after["stars:held"] == 0
    # The same successful_payment delivered again, three times: nothing changes.
    assert paid.message is not None
    for _ in range(3):
        await emulator.send_raw_update(runner.token, {"message": paid.message.raw})
    await user.wait_idle(quiet=0.5)
    assert [m for m in user.bot_messages if m.kind == "photo"] == photos
    assert await balances(app, user.id) == stars_after
    assert len(await payments(app, user.id)) == 1
    # Paying the same invoice again is refused at pre-checkout: it is paid already.
    again = await user.pay(invoice)
    assert not again.ok
    assert "already been paid" in (again.error_message or "")
    await books_balance(app)


async def test_a_paid_generation_that_fails_is_refunded_and_the_user_told(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0, job_max_attempts=1)
    user = emulator.user(user_id=5002, first_name="Bo")
    await open_summary(user, "a castle [demo:fail=unavailable]")
    await user.press("Pay 1 ⭐")
    await user.wait_for(is_invoice)
    paid = await user.pay()
    assert paid.ok
    await user.wait_for_text("The generation failed, so your", timeout=15)
    refunds = emulator.calls("refundStarPayment")
    assert len(refunds) == 1
    assert refunds[0].params["telegram_payment_charge_id"] == paid.charge_id
    [payment] = await payments(app, user.id)
    assert payment["status"] == "refunded"
    assert payment["refund_state"] == "done"
    assert (await balances(app, user.id))["stars"] == 0
    await books_balance(app)


async def test_a_stale_invoice_is_refused_at_pre_checkout(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0)
    user = emulator.user(user_id=5003, first_name="Cy")
    await open_summary(user, "first idea")
    await user.press("Pay 1 ⭐")
    first_invoice = await user.wait_for(is_invoice)
    await open_summary(user, "second idea")  # a new request replaces the unpaid one
    await user.press("Pay 1 ⭐")
    await user.wait_for(lambda m: is_invoice(m) and m.message_id != first_invoice.message_id)
    stale = await user.pay(first_invoice)
    assert not stale.ok
    assert stale.reason == "declined"
    assert "expired" in (stale.error_message or "")
    fresh = await user.pay()
    assert fresh.ok
    await user.wait_for(lambda m: m.kind == "photo" and "second idea" in (m.text or ""), timeout=15)
    assert len(await payments(app, user.id)) == 1
    await books_balance(app)


async def test_top_up_credits_then_generate_with_them(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0, credit_packages="10:100,50:450")
    user = emulator.user(user_id=5004, first_name="Di")
    await user.send_text("/topup")
    await user.wait_for_text("Top up")
    await user.press("10 credits — 100 ⭐")
    await user.wait_for(is_invoice)
    paid = await user.pay()
    assert paid.ok
    await user.wait_for_text("+10 credits")
    assert (await balances(app, user.id))["credits"] == 10
    summary = await open_summary(user, "a red car")
    assert "balance: 10" in (summary.text or "")
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    await user.wait_idle()
    assert (await balances(app, user.id))["credits"] == 9  # the demo model costs 1 credit
    await user.send_text("/profile")
    profile = await user.wait_for_text("Your profile")
    assert "Credits: 9" in (profile.text or "")
    assert "Free images left: 0" in (profile.text or "")
    await books_balance(app)


async def test_a_referral_bonus_is_paid_once(runner: BotRunner, emulator: TelegramEmulator) -> None:
    app = await runner.start(free_trial_images=0, credit_packages="10:100,50:450")
    referrer = emulator.user(user_id=5005, first_name="Ed")
    await referrer.send_text("/referrals")
    screen = await referrer.wait_for_text("Invite friends")
    link = next(word for word in (screen.text or "").split() if "start=ref_" in word)
    payload = link.split("start=", 1)[1]
    friend = emulator.user(user_id=5006, first_name="Fay")
    await friend.send_text(f"/start {payload}")
    await friend.wait_for_text("Hello")
    await friend.send_text("/topup")
    await friend.wait_for_text("Top up")
    await friend.press("50 credits — 450 ⭐")
    await friend.wait_for(is_invoice)
    paid = await friend.pay()
    assert paid.ok
    await friend.wait_for_text("+50 credits")
    assert paid.message is not None
    await emulator.send_raw_update(runner.token, {"message": paid.message.raw})  # a replay
    await friend.wait_idle(quiet=0.5)
    assert (await balances(app, referrer.id))["credits"] == 5  # 10 % of 50
    await referrer.send_text("/referrals")
    screen = await referrer.wait_for_text("Credits earned: 5")
    assert "Invited: 1" in (screen.text or "")
    await books_balance(app)


async def test_subscription_bought_renewed_cancelled_and_expired(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    tiers = [{"id": "basic", "name": "Basic", "stars": 250, "images": 3, "max_outputs": 3}]
    app = await runner.start(free_trial_images=0, subscription_tiers=tiers)
    user = emulator.user(user_id=5007, first_name="Gil")
    await user.send_text("/subscription")
    screen = await user.wait_for_text("A subscription gives you")
    url = next(u for row in screen.urls for u in row if u)
    bought = await user.pay_link(url)
    assert bought.ok, bought.error_message
    await user.wait_for_text("Basic is active until")
    assert (await balances(app, user.id))["allowance"] == 3
    [link_call] = emulator.calls("createInvoiceLink")
    assert int(link_call.params["subscription_period"]) == 2592000

    summary = await open_summary(user, "a mountain")
    assert "Subscription: uses 1 of 3" in (summary.text or "")
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    await user.wait_idle()
    assert (await balances(app, user.id))["allowance"] == 2

    assert bought.charge_id is not None
    renewed = await user.renew_subscription(bought.charge_id)
    assert renewed.ok
    await user.wait_for_text("is active until")
    assert (await balances(app, user.id))["allowance"] == 3  # reset, not added

    await user.send_text("/subscription")
    await user.wait_for_text("Renews on")
    await user.press("Cancel renewal")
    await user.wait_for_text("Renewal is off")
    assert emulator.subscription_canceled(bought.charge_id)
    await user.press("Resume renewal")
    await user.wait_for_text("Renews on")
    assert not emulator.subscription_canceled(bought.charge_id)
    await user.change_subscription(bought.charge_id, "canceled")  # the user, in Telegram
    await user.wait_idle()

    # Thirty days pass (the period's end is moved into the past) and the sweeper runs.
    async with app.sessionmaker() as session:
        await session.execute(
            update(tables.subscriptions)
            .where(tables.subscriptions.c.user_id == user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
    await app.settle_money()
    await user.wait_for_text("subscription has ended")
    assert (await balances(app, user.id))["allowance"] == 0
    summary = await open_summary(user, "after the end")
    assert "Pay 1 ⭐" in summary.flat_buttons
    await books_balance(app)


async def test_a_banned_user_is_refused_at_pre_checkout(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(free_trial_images=0)
    user = emulator.user(user_id=5008, first_name="Hal")
    await open_summary(user, "a bridge")
    await user.press("Pay 1 ⭐")
    await user.wait_for(is_invoice)
    async with app.sessionmaker() as session:
        await session.execute(
            update(tables.users).where(tables.users.c.id == user.id).values(is_banned=True)
        )
        await session.commit()
    refused = await user.pay()
    assert not refused.ok
    assert refused.reason == "declined"
    assert await payments(app, user.id) == []
