"""Small things a user notices: a file Telegram cannot hand out, /refund, plural forms."""

from __future__ import annotations

import logging

import pytest

from lumigram.emulator import ChatMessage, TelegramEmulator
from tests.e2e.conftest import BotRunner
from tests.e2e.test_generation import generate, png

UNREADABLE = "I couldn't read that file, please send it again."


def download_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "lumigram.bot.handlers.generate" and "not downloaded" in r.getMessage()
    ]


async def test_a_file_that_cannot_be_downloaded_gets_a_clear_message_and_a_second_chance(
    runner: BotRunner, emulator: TelegramEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await runner.start()
    runner.allowed_errors.append("file is too big")  # the getFile refusal provoked below
    user = emulator.user(user_id=1101, first_name="Ann")
    await generate(user, "Custom prompt", "a lighthouse at dusk")

    # The download of the file answers 404 (Telegram lost it).
    sent = await user.send_photo(png())
    emulator.fail_file(sent)  # before the bot gets to it: nothing has awaited since
    await user.wait_for_text(UNREADABLE)
    await user.send_photo(png())
    await user.wait_for_text("Reference image added (1 of 4)")
    await user.wait_for_text("Reference images: 1 of 4")

    # getFile refuses a document: "Bad Request: file is too big".
    sent = await user.send_document(png(), filename="ref.png", mime_type="image/png")
    emulator.fail_file(sent, on="getFile")
    await user.wait_for_text(UNREADABLE)

    # The connection breaks during the download (a network failure).
    sent = await user.send_photo(png(colour=(0, 0, 200)))
    emulator.fail_file(sent, drop=True, times=None)
    await user.wait_for_text(UNREADABLE)

    # Sent again: it is added, and the request goes on to its image.
    await user.send_document(png(), filename="ref.png", mime_type="image/png")
    summary = await user.wait_for_text("Reference images: 2 of 4")
    await user.press("Generate", message=summary)
    photo = await user.wait_for(lambda m: m.kind == "photo" and m.from_bot, timeout=15)
    assert "a lighthouse at dusk" in (photo.text or "")

    assert "Something went wrong" not in user.render()
    warnings = download_warnings(caplog)
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    assert "HTTP 404" in warnings[0].getMessage()
    assert "file is too big" in warnings[1].getMessage()
    assert runner.token not in " ".join(r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_photo_with_its_prompt_that_fails_keeps_the_prompt_step(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=1102, first_name="Bo")
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    await user.wait_for_text("Send me what to draw")
    sent = await user.send_photo(png(), caption="a red boat")
    emulator.fail_file(sent, status=404)
    await user.wait_for_text(UNREADABLE)
    await user.wait_idle()
    assert "Check your request" not in user.render()
    # Still at the prompt step: the photo sent again (with its caption) goes on.
    await user.send_photo(png(), caption="a red boat")
    await user.wait_for_text("Reference image added (1 of 4)")
    summary = await user.wait_for_text("Check your request")
    assert "a red boat" in (summary.text or "")


# --- /refund ---------------------------------------------------------------------------


def refund_buttons(message: ChatMessage) -> list[str]:
    return [label for label in message.flat_buttons if label.startswith("#")]


async def test_refund_offers_only_generations_paid_with_credits_or_stars(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(free_trial_images=1, credit_packages="10:100")
    user = emulator.user(user_id=1103, first_name="Cy")
    await generate(user, "Custom prompt", "a free lake")  # the free image
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "photo" and "a free lake" in (m.text or ""), 15)

    await user.send_text("/refund")
    nothing = await user.wait_for_text("There is nothing to refund")
    assert "paid with credits or Stars" in (nothing.text or "")
    assert refund_buttons(nothing) == []

    # Paid by a Stars invoice.
    await generate(user, "Custom prompt", "a paid castle")
    summary = user.last_bot_message
    assert summary is not None
    [pay] = [label for label in summary.flat_buttons if label.startswith("Pay ")]
    stars = int(pay.split()[1])
    await user.press(pay)
    await user.wait_for(lambda m: m.invoice is not None)
    paid = await user.pay()
    assert paid.ok, paid.error_message
    await user.wait_for(lambda m: m.kind == "photo" and "a paid castle" in (m.text or ""), 15)

    # Paid with credits bought in a package.
    await user.send_text("/topup")
    await user.wait_for_text("Top up")
    await user.press("10 credits")
    await user.wait_for(lambda m: m.invoice is not None and m.invoice["total_amount"] == 100)
    assert (await user.pay()).ok
    await user.wait_for_text("+10 credits")
    await generate(user, "Custom prompt", "a credit tree")
    await user.press("Generate · 1 credit")  # the demo model costs 1 credit
    await user.wait_for(lambda m: m.kind == "photo" and "a credit tree" in (m.text or ""), 15)
    await user.wait_idle()

    await user.send_text("/refund")
    pick = await user.wait_for_text("Which paid generation")
    offered = refund_buttons(pick)
    assert len(offered) == 2, offered
    assert "· 1 credit ·" in offered[0]
    assert "a credit tree" in offered[0]
    assert f"· {stars} ⭐ ·" in offered[1]
    assert "a paid castle" in offered[1]
    assert "a free lake" not in " ".join(pick.flat_buttons)

    await user.press(offered[0], message=pick)
    await user.wait_for_text("describe in one message")
    await user.send_text("The tree is blue, I asked for green.")
    await user.wait_for_text("Your refund request #")
