"""Videos end to end: the real bot with only KIE_API_KEY set, the emulator, FakeKie.

The bot long-polls the Bot API emulator; KIE is the fake over real HTTP, pointed at by
``KIE_BASE_URL`` and ``KIE_UPLOAD_BASE_URL``. Each model family makes a real MP4 that
reaches the chat with ``sendVideo``; money goes through the real ledger.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lumigram.container import Services
from lumigram.domain.money import Account, EntryKind
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.fakes.base import sample_image
from lumigram.fakes.kie import FakeKie, make_sample_mp4
from lumigram.runtime import BotApplication
from tests.e2e.conftest import BotRunner
from tests.e2e.test_money import balances, books_balance, is_invoice

KEY = "kie-e2e-key"
VIDEO = make_sample_mp4(1.0, 96, 54)


def photo(width: int = 640, height: int = 480) -> bytes:
    return sample_image(width, height)


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(api_key=KEY, video=VIDEO, run_seconds=0.5)
    await fake.start()
    yield fake
    await fake.stop()


def kie_settings(kie: FakeKie, **extra: Any) -> dict[str, Any]:
    return {
        "kie_api_key": KEY,
        "kie_base_url": kie.base_url,
        "kie_upload_base_url": kie.base_url,
        "job_retry_delay": 0.1,
        **extra,
    }


async def grant(app: BotApplication, user_id: int, amount: int) -> None:
    async with app.sessionmaker() as session:
        await Services(session, app.infra).ledger.post(
            user_id, Account.CREDITS.value, amount, EntryKind.TOP_UP, f"test:grant:{user_id}"
        )
        await session.commit()


async def register(user: Any) -> None:
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")


async def open_video_summary(
    user: Any, model: str, prompt: str, *, with_photo: bool, required: bool
) -> ChatMessage:
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press(model)
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    await user.wait_for_text("Describe the video you want")
    await user.send_text(prompt)
    if required:
        await user.wait_for_text("Now send the photo to animate")
    else:
        await user.wait_for_text("Check your video request")
    if with_photo:
        await user.send_photo(photo(), caption=None)
    summary: ChatMessage = await user.wait_for(
        lambda m: (
            "Check your video request" in (m.text or "")
            and (not with_photo or any(w in (m.text or "") for w in ("added", "images: 1 of 1")))
        ),
        timeout=10,
    )
    return summary


def confirm_label(summary: ChatMessage) -> str:
    return next(label for label in summary.flat_buttons if "Create the video" in label)


# (button, photo sent, photo required, KIE create path, price in credits)
FAMILIES = [
    ("Veo 3 Fast", False, False, "/api/v1/veo/generate", 60),
    ("Runway Gen-3", True, False, "/api/v1/runway/generate", 15),
    ("Wan 2.2 (text to video)", False, False, "/api/v1/jobs/createTask", 16),
    ("Kling 2.1", True, True, "/api/v1/jobs/createTask", 25),
]


@pytest.mark.parametrize(
    ("model", "with_photo", "required", "path", "price"),
    FAMILIES,
    ids=["veo", "runway-photo", "wan-text", "kling-photo"],
)
async def test_each_family_makes_a_video_that_arrives_in_the_chat(
    runner: BotRunner,
    emulator: TelegramEmulator,
    kie: FakeKie,
    model: str,
    with_photo: bool,
    required: bool,
    path: str,
    price: int,
) -> None:
    app = await runner.start(**kie_settings(kie))
    user = emulator.user(user_id=6100, first_name="Vi")
    await register(user)
    await grant(app, user.id, 100)
    summary = await open_video_summary(
        user, model, "a paper boat on a river", with_photo=with_photo, required=required
    )
    label = confirm_label(summary)
    assert f"{price} credits" in label
    await user.press(label)
    video = await user.wait_for(lambda m: m.kind == "video", timeout=30)
    assert "a paper boat on a river" in (video.text or "")
    assert "Regenerate" in " ".join(video.flat_buttons)
    assert emulator.file_bytes(video.media[0]) == VIDEO

    [call] = emulator.calls("sendVideo")
    params = call.params
    assert str(params["supports_streaming"]).lower() == "true"
    assert int(params["width"]) == 96
    assert int(params["height"]) == 54
    assert int(params["duration"]) == 1
    assert "thumbnail" in params
    actions = [c.params.get("action") for c in emulator.calls("sendChatAction")]
    assert "upload_video" in actions
    assert (await balances(app, user.id))["credits"] == 100 - price

    [task] = kie.tasks.values()
    assert task.body is not None
    assert [r.path for r in kie.requests if r.method == "POST" and "upload" not in r.path] == [path]
    if with_photo:
        [upload] = kie.uploads.values()
        assert upload.data == photo()  # the user's own photo, uploaded to KIE
        assert "api.telegram.org" not in str(task.body)
        assert runner.token not in str(task.body)
    await books_balance(app)


async def test_a_video_is_paid_by_invoice_and_a_failure_is_refunded(
    runner: BotRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    app = await runner.start(**kie_settings(kie, free_trial_images=3, job_max_attempts=1))
    user = emulator.user(user_id=6200, first_name="Ia")
    summary = await open_video_summary(
        user, "Wan 2.2 (text to video)", "a lantern festival", with_photo=False, required=False
    )
    # Three free images, but they do not pay for a video: the button is the invoice.
    assert "Pay 16 ⭐" in summary.flat_buttons
    await user.press("Pay 16 ⭐")
    invoice = await user.wait_for(is_invoice, timeout=10)
    assert invoice.invoice is not None
    assert invoice.invoice["total_amount"] == 16
    paid = await user.pay()
    assert paid.ok, paid.error_message
    await user.wait_for(lambda m: m.kind == "video", timeout=30)
    assert (await balances(app, user.id))["trial"] == 3

    # The next one fails at KIE (501): the user is told and the Stars come back.
    kie.fail_next_task(501)
    summary = await open_video_summary(
        user, "Wan 2.2 (text to video)", "a lantern festival again", with_photo=False,
        required=False,
    )  # fmt: skip
    await user.press("Pay 16 ⭐")
    await user.wait_for(lambda m: is_invoice(m) and m.message_id != invoice.message_id)
    paid = await user.pay()
    assert paid.ok, paid.error_message
    await user.wait_for_text("could not generate this", timeout=30)
    await user.wait_for_text("refunded", timeout=30)
    async with asyncio.timeout(20):
        while len(emulator.calls("refundStarPayment")) < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert len([m for m in user.bot_messages if m.kind == "video"]) == 1
    await books_balance(app)


async def test_a_video_waiting_at_kie_survives_a_restart_and_arrives_once(
    runner: BotRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    kie.run_seconds = 3600.0
    app = await runner.start(**kie_settings(kie))
    user = emulator.user(user_id=6300, first_name="Re")
    await register(user)
    await grant(app, user.id, 100)
    summary = await open_video_summary(
        user, "Kling 2.1", "the dog wags its tail", with_photo=True, required=True
    )
    await user.press(confirm_label(summary))
    await user.wait_for_text("waiting in the queue", timeout=15)
    assert len(kie.tasks) == 1

    app = await runner.restart(**kie_settings(kie))
    [task] = kie.tasks.values()
    task.run_seconds = 0.0  # KIE finishes while the new process polls
    await user.wait_for(lambda m: m.kind == "video", timeout=30)
    await user.wait_idle(quiet=1.0)
    assert len([m for m in user.bot_messages if m.kind == "video"]) == 1
    assert len(kie.tasks) == 1  # re-attached by its task id, never created twice
    assert (await balances(app, user.id))["credits"] == 75
    await books_balance(app)


async def test_a_video_over_50_mb_is_sent_as_a_link(
    runner: BotRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    pad = 51 * 1024 * 1024  # a free box after the movie: still a valid MP4
    kie.video = VIDEO + struct.pack(">I", pad + 8) + b"free" + bytes(pad)
    app = await runner.start(
        **kie_settings(kie, public_base_url="http://127.0.0.1:9", provider_callbacks=False)
    )
    user = emulator.user(user_id=6400, first_name="Bi")
    await register(user)
    await grant(app, user.id, 100)
    summary = await open_video_summary(
        user, "Veo 3 Fast", "a long whale song", with_photo=False, required=False
    )
    await user.press(confirm_label(summary))
    link = await user.wait_for(lambda m: "larger than 50 MB" in (m.text or ""), timeout=60)
    # The link (a text link on "here") is ours, signed, under PUBLIC_BASE_URL.
    assert "http://127.0.0.1:9/files/results/" in str(link.raw)
    assert "expires=" in str(link.raw)
    assert "sig=" in str(link.raw)
    assert emulator.calls("sendVideo") == []
    stored = (await balances(app, user.id))["credits"]
    assert stored == 40  # delivered as a link: it counts as delivered
