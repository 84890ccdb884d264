"""Generating images end to end: the real bot, the emulator, the demo provider."""

from __future__ import annotations

import asyncio

import pytest

from lumigram.emulator import ChatMessage, TelegramEmulator
from tests.e2e.conftest import BotRunner


def labels(message: ChatMessage) -> list[str]:
    return [label for row in message.buttons for label in row]


async def generate(user, mode: str, prompt: str) -> None:  # type: ignore[no-untyped-def]
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press(mode)
    await user.wait_for_text("Send me what to draw")
    await user.send_text(prompt)
    await user.wait_for_text("Check your request")


@pytest.mark.parametrize(
    "mode", ["Nature", "Cars", "City", "Food", "Custom prompt", "Coloring page"]
)
async def test_each_mode_delivers_an_image_and_the_original(
    runner: BotRunner, emulator: TelegramEmulator, mode: str
) -> None:
    await runner.start()
    user = emulator.user(user_id=1000, first_name="Ann")
    await generate(user, mode, "a red fox in the snow")
    await user.press("Generate")
    photo = await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    assert "a red fox in the snow" in (photo.text or "")
    assert "Regenerate" in " ".join(labels(photo))
    document = await user.wait_for(lambda m: m.kind == "document", timeout=10)
    assert document.raw["document"]["file_name"].startswith("lumigram-")


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_reference_images_and_settings_reach_the_result(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=1001, first_name="Bo")
    await generate(user, "Custom prompt", "a lighthouse at dusk")
    await user.send_photo(png(), caption=None)
    await user.wait_for_text("Reference image added (1 of 4)")
    await user.send_document(png(colour=(10, 200, 10)), filename="ref.png", mime_type="image/png")
    await user.wait_for_text("Reference image added (2 of 4)")
    summary = await user.wait_for_text("Reference images: 2 of 4")
    await user.press("Settings", message=summary)
    await user.wait_for_text("Choose what to change")
    await user.press("Aspect ratio: 1:1")
    await user.wait_for_text("choose a value")
    await user.press("16:9")
    await user.wait_for(lambda m: "Aspect ratio: 16:9" in " ".join(labels(m)))
    await user.press("Images: 1")
    await user.wait_for_text("Number of images")
    await user.press("2")
    await user.wait_for(lambda m: "Images: 2" in " ".join(labels(m)))
    await user.press("Seed: random")
    await user.wait_for_text("Send the seed")
    await user.send_text("12345")
    summary = await user.wait_for_text("Seed: 12345")
    assert "Aspect ratio: 16:9" in (summary.text or "")
    await user.press("Generate")
    album = await user.wait_for(
        lambda m: m.kind == "media_group item" and m.media_type == "photo", timeout=15
    )
    await user.wait_for(lambda m: "Regenerate" in " ".join(labels(m)), timeout=10)
    photos = [m for m in user.bot_messages if m.media_type == "photo"]
    documents = [m for m in user.bot_messages if m.media_type == "document"]
    assert len(photos) == 2
    assert len(documents) == 2
    original = emulator.file_bytes(documents[0].media[0])
    import io

    from PIL import Image

    width, height = Image.open(io.BytesIO(original)).size
    assert abs(width / height - 16 / 9) < 0.02
    assert album.text
    assert "a lighthouse at dusk" in album.text


async def test_bad_prompts_get_a_clear_message_and_a_second_chance(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(max_prompt_length=40)
    user = emulator.user(user_id=1002, first_name="Cy")
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo")
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    await user.wait_for_text("Send me what to draw")
    await user.send_text("x" * 41)
    await user.wait_for_text("too long: 41 characters, the limit is 40")
    await user.send_text("\u200b\u200e")
    await user.wait_for_text("no text I can use")
    await user.send_document(
        b"%PDF-1.4 not an image", filename="a.pdf", mime_type="application/pdf"
    )
    await user.wait_for_text("Please send a JPEG, PNG or WebP image")
    await user.send_text("a quiet harbour")
    await user.wait_for_text("Check your request")


async def test_one_active_job_per_user_and_cancel(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=1003, first_name="Di")
    await generate(user, "Custom prompt", "slow boats [demo:slow=30]")
    await user.press("Generate")
    await user.wait_for_text("Generating", timeout=10)
    await generate(user, "Custom prompt", "another one")
    await user.press("Generate")
    refusal = await user.wait_for_text("still being generated")
    await user.press("Cancel it", message=refusal)
    await user.wait_for_text("Generation cancelled")
    await user.send_text("/cancel")
    await user.wait_for_text("no generation in progress")


async def test_failures_reach_the_user_as_clear_messages(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(job_retry_delay=0.05, job_max_attempts=2)
    user = emulator.user(user_id=1004, first_name="Ed")
    cases = {
        "[demo:reject] a forbidden thing": "safety filter declined",
        "[demo:fail=unavailable] x": "temporarily unavailable",
        "[demo:fail=invalid] x": "could not process this request",
        "[demo:fail=transient] x": "generation failed",
    }
    for prompt, expected in cases.items():
        await generate(user, "Custom prompt", prompt)
        await user.press("Generate")
        failure = await user.wait_for_text(expected, timeout=10)
        assert "Try again" in labels(failure)[0]


async def test_history_resends_by_file_id_and_regenerates(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=1005, first_name="Fay")
    await generate(user, "Food", "pancakes")
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "document", timeout=15)
    uploads_before = len(emulator.calls("sendPhoto"))
    seen_history: list[ChatMessage] = []
    # The files go out before the worker marks the job succeeded: until it has, /history
    # shows it in progress (without the re-send button), so ask again until it is done.
    for _ in range(50):
        await user.send_text("/history")
        history = await user.wait_for(
            lambda m: "Your recent generations" in (m.text or "") and m not in seen_history
        )
        seen_history.append(history)
        if "📤 #1" in history.flat_buttons:
            break
        await asyncio.sleep(0.1)
    assert "pancakes" in (history.text or "")
    await user.press("📤 #1", message=history)
    await user.wait_idle(quiet=0.5)
    resent = emulator.calls("sendPhoto")[uploads_before:]
    assert resent
    assert all(isinstance(call.params.get("photo"), str) for call in resent)
    photos = [m for m in user.bot_messages if m.media_type == "photo"]
    assert photos[-1].media[-1] == photos[0].media[-1]  # the same file, not a new upload
    await user.press("🔁 #1", message=history)
    await user.wait_for(lambda m: m.media_type == "photo" and m not in photos, timeout=15)


async def test_result_buttons_change_prompt_and_use_as_reference(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start()
    user = emulator.user(user_id=1006, first_name="Gus")
    await generate(user, "City", "night market")
    await user.press("Generate")
    result = await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    await user.press("Change prompt", message=result)
    await user.wait_for_text("Send me what to draw")
    await user.send_text("morning market")
    await user.wait_for_text("Check your request")
    await user.send_text("/menu")
    await user.wait_for_text("Main menu")
    await user.press("Use as reference", message=result)
    await user.wait_for_text("Send me what to draw")
    await user.send_text("the same, in winter")
    await user.wait_for_text("Reference images: 1 of 4")


async def test_job_survives_a_restart_and_is_delivered_once(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    await runner.start(job_retry_delay=0.1)
    user = emulator.user(user_id=1007, first_name="Hal")
    await generate(user, "Custom prompt", "a patient tortoise [demo:slow=2]")
    await user.press("Generate")
    await user.wait_for_text("Generating", timeout=10)
    await runner.stop()  # the process goes away mid-generation
    await runner.start(job_retry_delay=0.1)
    await user.wait_for(lambda m: m.kind == "photo", timeout=20)
    await user.wait_idle(quiet=1.0, timeout=10)
    assert len([m for m in user.bot_messages if m.media_type == "photo"]) == 1
    assert len([m for m in user.bot_messages if m.media_type == "document"]) == 1
