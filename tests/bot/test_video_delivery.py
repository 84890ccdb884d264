"""Videos reach Telegram: TelegramNotifier against the real Bot API emulator.

A real small MP4 (PyAV) and its first frame lie in a LocalStorage; the job and its
Telegram ids are in the test database. Nothing of ours is patched: what the bot sent
is read back from the emulator's request log and the user's chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.bot.i18n import build_i18n
from lumigram.bot.job_messages import TelegramJobMessages
from lumigram.bot.notifier import LINK_SECONDS, TELEGRAM_UPLOAD_LIMIT, TelegramNotifier
from lumigram.catalog import Catalog, ModelSpec
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.telegram import FileIds
from lumigram.db.repositories.users import UserRepository
from lumigram.domain.jobs import Job, JobStatus, JobStep, ResultFile
from lumigram.emulator import FloodLimits, RecordedRequest, SimUser, TelegramEmulator
from lumigram.fakes.kie import make_sample_mp4
from lumigram.services.users import Contact, UserPolicy, UserService
from lumigram.storage.local import LocalStorage
from lumigram.video import first_frame

Sessions = async_sessionmaker[AsyncSession]

USER_ID = 5151
VIDEO_MODEL = "kling-i2v"
WIDTH, HEIGHT = 64, 36


class FastSession(AiohttpSession):
    """aiogram's session without the 250 ms grace sleep on close."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def video_model() -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": VIDEO_MODEL,
            "name": "Kling 2.1",
            "provider": "kie",
            "provider_model": "kling/v2-1-standard",
            "description": {"en": "Animates a photo", "ru": "Оживляет фото", "uz": "Jonlantiradi"},
            "capabilities": {
                "kind": "video",
                "max_reference_images": 1,
                "min_reference_images": 1,
                "aspect_ratios": ["16:9"],
                "output_formats": ["mp4"],
                "durations": [5, 10],
            },
            "defaults": {"aspect_ratio": "16:9", "output_format": "mp4", "duration_seconds": 5},
            "cost": {"base": 10, "per_second": 2},
        }
    )


class FakeLinks:
    """A ``download_link``: remembers what it was asked for, answers a signed URL."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.expires_at = datetime(2026, 12, 24, 18, 30, tzinfo=UTC)

    async def __call__(self, key: str, seconds: int) -> tuple[str, datetime] | None:
        self.asked.append((key, seconds))
        return f"https://files.example.com/{key}?sig=abc&exp=1", self.expires_at


@dataclass
class World:
    emu: TelegramEmulator
    bot: Bot
    user: SimUser
    storage: LocalStorage
    sessionmaker: Sessions
    messages: TelegramJobMessages

    def notifier(self, **options: Any) -> TelegramNotifier:
        return TelegramNotifier(
            self.bot,
            build_i18n("en"),
            Catalog([video_model()]),
            self.messages,
            self.storage,
            **options,
        )

    async def job(
        self,
        results: list[ResultFile],
        *,
        status: JobStatus = JobStatus.SUCCEEDED,
        language: str = "en",
        model_id: str = VIDEO_MODEL,
        provider: str = "kie",
        provider_state: str | None = None,
        started_seconds_ago: float = 0.0,
    ) -> Job:
        now = datetime.now(UTC)
        job = Job(
            user_id=USER_ID,
            language=language,
            model_id=model_id,
            provider=provider,
            provider_model="kling/v2-1-standard",
            mode="custom",
            prompt="the cat waves hello",
            final_prompt="the cat waves hello",
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            settings={"duration_seconds": 5, "aspect_ratio": "16:9"},
            reply_to=str(self.user.chat_id),
            status=status,
            step=JobStep.DONE if status is JobStatus.SUCCEEDED else JobStep.POLL,
            provider_state=provider_state,
            started_at=now - timedelta(seconds=started_seconds_ago),
            result_files=[result.to_json() for result in results],
        )
        async with self.sessionmaker() as session:
            await JobRepository(session).add(job)
            await session.commit()
        return job

    async def stored_ids(self, job: Job, count: int) -> dict[int, FileIds]:
        """The file ids the notifier stores in the background, once there are ``count``."""
        assert job.id is not None
        for _ in range(100):
            ids = await self.messages.file_ids(job.id)
            if len(ids) >= count:
                return ids
            await asyncio.sleep(0.02)
        raise AssertionError("the file ids were never stored")


@pytest.fixture
async def world(sessionmaker: Sessions, tmp_path: Path) -> AsyncIterator[World]:
    emu = TelegramEmulator(flood=FloodLimits.disabled())
    await emu.start()
    token = emu.create_bot(username="lumigram_bot", first_name="Lumigram")
    bot = Bot(
        token,
        session=FastSession(api=TelegramAPIServer.from_base(emu.base_url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    async with sessionmaker() as session:
        await UserService(
            UserRepository(session), AuditRepository(session), session, UserPolicy()
        ).register_contact(Contact(user_id=USER_ID, first_name="Vera", language_code="en"))
    try:
        yield World(
            emu=emu,
            bot=bot,
            user=emu.user(user_id=USER_ID, first_name="Vera"),
            storage=LocalStorage(tmp_path / "storage"),
            sessionmaker=sessionmaker,
            messages=TelegramJobMessages(sessionmaker),
        )
        emu.assert_no_errors()  # every call was valid against the Bot API spec
    finally:
        await bot.session.close()
        await emu.stop()


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return make_sample_mp4(seconds=1.0, width=WIDTH, height=HEIGHT)


async def stored_video(world: World, mp4: bytes, job_number: int = 1) -> ResultFile:
    key = f"results/{job_number}/0.mp4"
    thumbnail_key = f"results/{job_number}/0.jpg"
    await world.storage.put(key, mp4, "video/mp4")
    await world.storage.put(thumbnail_key, first_frame(mp4), "image/jpeg")
    return ResultFile(
        key=key,
        mime_type="video/mp4",
        width=WIDTH,
        height=HEIGHT,
        duration=1.0,
        thumbnail_key=thumbnail_key,
        size=len(mp4),
    )


def upload(params: dict[str, Any], name: str) -> str:
    """What a parameter sent as a file was (the emulator logs "<Upload 'name' n bytes>")."""
    value = str(params.get(name, ""))
    assert value.startswith("attach://"), (name, value)
    return str(params[value.removeprefix("attach://")])


def index_of(world: World, request: RecordedRequest) -> int:
    return next(i for i, r in enumerate(world.emu.requests) if r is request)


# --- delivery ----------------------------------------------------------------------------


async def test_a_video_goes_out_streamable_with_its_thumbnail_and_is_resent_by_id(
    world: World, mp4: bytes
) -> None:
    result = await stored_video(world, mp4)
    job = await world.job([result])
    notifier = world.notifier()

    await notifier.deliver(job, [(result, mp4)])

    [sent] = world.emu.calls("sendVideo")
    params = sent.params
    assert str(params["supports_streaming"]).lower() == "true"
    assert (int(params["duration"]), int(params["width"]), int(params["height"])) == (
        1,
        WIDTH,
        HEIGHT,
    )
    assert "'thumb.jpg'" in upload(params, "thumbnail")  # the stored first frame
    assert f"'lumigram-{job.id}-1.mp4'" in upload(params, "video")  # uploaded this time
    [action] = world.emu.calls("sendChatAction")
    assert action.params["action"] == "upload_video"
    assert index_of(world, action) < index_of(world, sent)  # just before the upload
    assert world.emu.calls("sendDocument") == []  # no document copy of a video
    assert world.emu.calls("sendPhoto") == []

    message = world.user.last_bot_message
    assert message is not None
    assert message.media_type == "video"
    assert "Kling 2.1" in (message.text or "")  # the caption
    labels = [label for row in message.buttons for label in row]
    assert "🔁 Regenerate" in labels
    assert "🖼 Use as reference" not in labels  # a video cannot be a reference image
    video = message.raw["video"]
    assert (video["width"], video["height"], video["duration"]) == (WIDTH, HEIGHT, 1)
    assert world.emu.file_bytes(video["file_id"]) == mp4

    ids = await world.stored_ids(job, 1)
    # The video's file id is kept in the photo slot; there is no document.
    assert ids == {0: FileIds(video["file_id"], None)}

    # /history: sent again by its file id, not uploaded (nor read from storage) again.
    world.emu.clear_log()
    await world.storage.delete(result.key)
    await notifier.resend(job, world.user.chat_id)
    [again] = world.emu.calls("sendVideo")
    assert again.params["video"] == video["file_id"]
    assert world.emu.calls("sendChatAction") == []  # nothing to upload
    resent = world.user.last_bot_message
    assert resent is not None
    assert resent.message_id != message.message_id
    assert resent.raw["video"]["file_id"] == video["file_id"]


async def test_a_resend_before_the_file_id_is_known_uploads_from_storage(
    world: World, mp4: bytes
) -> None:
    result = await stored_video(world, mp4)
    job = await world.job([result])

    await world.notifier().resend(job, world.user.chat_id)  # never delivered: no id yet

    [sent] = world.emu.calls("sendVideo")
    assert "Upload" in upload(sent.params, "video")
    assert "'thumb.jpg'" in upload(sent.params, "thumbnail")
    message = world.user.last_bot_message
    assert message is not None
    assert world.emu.file_bytes(message.raw["video"]["file_id"]) == mp4


async def test_a_video_over_the_upload_limit_gets_a_download_link(world: World) -> None:
    big = ResultFile(
        key="results/7/0.mp4",
        mime_type="video/mp4",
        width=1920,
        height=1080,
        duration=10.0,
        thumbnail_key="results/7/0.jpg",
        size=TELEGRAM_UPLOAD_LIMIT + 1,
    )
    job = await world.job([big])
    links = FakeLinks()

    # The bytes handed over are not what is measured: the stored size is.
    await world.notifier(download_link=links).deliver(job, [(big, b"not uploaded")])

    assert world.emu.calls("sendVideo") == []
    assert links.asked == [(big.key, LINK_SECONDS)]
    assert LINK_SECONDS == 7 * 24 * 3600
    message = world.user.last_bot_message
    assert message is not None
    text = message.text or ""
    assert "larger than 50 MB" in text
    assert "7 days, until 2026-12-24 18:30 UTC" in text
    assert "the cat waves hello" in text  # the result's caption comes with it
    links_in_text = [e["url"] for e in message.entities if e["type"] == "text_link"]
    assert links_in_text == [f"https://files.example.com/{big.key}?sig=abc&exp=1"]
    assert "🔁 Regenerate" in [label for row in message.buttons for label in row]


async def test_a_video_over_the_limit_without_links_stays_in_the_history(world: World) -> None:
    big = ResultFile(
        key="results/8/0.mp4",  # not even stored: a re-send must not read it
        mime_type="video/mp4",
        width=1920,
        height=1080,
        duration=10.0,
        size=TELEGRAM_UPLOAD_LIMIT + 1,
    )
    job = await world.job([big], language="ru")
    notifier = world.notifier()

    await notifier.resend(job, world.user.chat_id)

    assert world.emu.calls("sendVideo") == []
    message = world.user.last_bot_message
    assert message is not None
    assert "больше 50 МБ" in (message.text or "")
    assert "/history" in (message.text or "")


# --- progress ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("waiting", "🎬 Your video is waiting in the queue… 1 min 15 s"),
        ("queuing", "🎬 Your video is waiting in the queue… 1 min 15 s"),
        ("generating", "🎬 Your video is being generated… 1 min 15 s"),
        (None, "🎬 Creating your video… 1 min 15 s"),
    ],
)
async def test_video_progress_shows_the_providers_state_and_the_time(
    world: World, state: str | None, expected: str
) -> None:
    job = await world.job(
        [], status=JobStatus.RUNNING, provider_state=state, started_seconds_ago=75.5
    )
    assert world.notifier(time_step=5).progress_text(job) == expected


async def test_video_progress_in_russian_and_images_as_before(world: World) -> None:
    video = await world.job(
        [],
        status=JobStatus.RUNNING,
        provider_state="generating",
        language="ru",
        started_seconds_ago=12.5,
    )
    notifier = world.notifier(time_step=4)
    assert notifier.progress_text(video) == "🎬 Видео генерируется… 12 секунд"
    # A model no longer in the catalog: KIE's jobs are videos, the others images.
    gone = await world.job([], status=JobStatus.RUNNING, model_id="veo3-fast", provider="kie")
    assert notifier.progress_text(gone).startswith("🎬 Creating your video…")
    image = await world.job(
        [], status=JobStatus.RUNNING, model_id="flux", provider="replicate", started_seconds_ago=9.5
    )
    assert notifier.progress_text(image) == "🎨 Generating… 8 s"


async def test_video_progress_message_and_record_video_action(world: World) -> None:
    job = await world.job([], status=JobStatus.RUNNING, provider_state="queuing")
    notifier = world.notifier()

    await notifier.show_progress(job)

    [action] = world.emu.calls("sendChatAction")
    assert action.params["action"] == "record_video"
    message = world.user.last_bot_message
    assert message is not None
    assert (message.text or "").startswith("🎬 Your video is waiting in the queue…")
    assert "✖ Cancel" in [label for row in message.buttons for label in row]

    image = await world.job([], status=JobStatus.RUNNING, model_id="flux", provider="replicate")
    world.emu.clear_log()
    await notifier.show_progress(image)
    [action] = world.emu.calls("sendChatAction")
    assert action.params["action"] == "upload_photo"


def test_elapsed_time_reads_naturally() -> None:
    from lumigram.bot import render

    i18n = build_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        assert render.elapsed(1) == "1 second"
        assert render.elapsed(59) == "59 seconds"
        assert render.elapsed(125) == "2 min 5 s"
        assert render.video_generating("generating", 40, 3).endswith("· 40%")
    with i18n.context(), i18n.use_locale("ru"):
        assert render.elapsed(21) == "21 секунда"
        assert render.elapsed(22) == "22 секунды"
        assert render.elapsed(25) == "25 секунд"


# --- the conversation: the real bot polling the emulator --------------------------------

VIDEO_CATALOG = """
[[model]]
id = "test-i2v"
name = "Test Animator"
provider = "kie"
provider_model = "kling/v2-1-standard"
sort = 1
description = { en = "Animates a photo", ru = "Оживляет фото", uz = "Rasmni jonlantiradi" }
capabilities = { kind = "video", max_reference_images = 1, min_reference_images = 1, \
aspect_ratios = ["16:9", "9:16"], output_formats = ["mp4"], durations = [5, 10], \
resolutions = ["720p", "1080p"] }
defaults = { aspect_ratio = "16:9", output_format = "mp4", duration_seconds = 5, \
resolution = "720p" }
cost = { base = 10, per_second = 2, surcharges = { resolution = { "1080p" = 5 } } }
"""


def png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def bot_runner(database_url: str) -> AsyncIterator[Any]:
    from tests.e2e.conftest import BotRunner

    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start()
    runner = BotRunner(emulator, database_url)
    try:
        yield runner
        await runner.stop()
        emulator.assert_no_errors(allow=runner.allowed_errors)
    finally:
        await runner.stop()
        await emulator.stop()


def labels(message: Any) -> list[str]:
    return [label for row in message.buttons for label in row]


async def test_an_image_to_video_model_asks_for_the_photo_and_offers_seconds(
    bot_runner: Any, tmp_path: Path
) -> None:
    catalog = tmp_path / "models.toml"
    catalog.write_text(VIDEO_CATALOG, encoding="utf-8")
    await bot_runner.start(catalog_file=str(catalog), kie_api_key="kie-test-key")
    user = bot_runner.emulator.user(user_id=7001, first_name="Ann")

    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Test Animator")
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    ask = await user.wait_for_text("Describe the video you want")
    assert "send the photo to animate" in (ask.text or "")
    await user.send_text("the cat waves hello")
    photo_screen = await user.wait_for_text("Now send the photo to animate")
    assert "Test Animator" in (photo_screen.text or "")
    assert not any("Create the video" in label for label in labels(photo_screen))

    await user.send_photo(png(640, 360))
    summary = await user.wait_for_text("Check your video request")
    text = summary.text or ""
    assert "Photo to animate: added" in text
    assert "Duration: 5 seconds" in text
    assert "Resolution: 720p" in text
    assert "Format" not in text

    await user.press("Settings", message=summary)
    settings = await user.wait_for_text("Choose what to change")
    assert {"Duration: 5 seconds", "Resolution: 720p"} <= set(labels(settings))
    await user.press("Duration: 5 seconds", message=settings)
    await user.wait_for_text("Duration: choose a value")
    await user.press("10 seconds")
    settings = await user.wait_for(lambda m: "Duration: 10 seconds" in labels(m))
    await user.press("Resolution: 720p", message=settings)
    await user.wait_for_text("Resolution: choose a value")
    await user.press("1080p")
    settings = await user.wait_for(lambda m: "Resolution: 1080p" in labels(m))
    await user.press("⬅️ Back", message=settings)
    summary = await user.wait_for_text("Duration: 10 seconds")
    assert "Resolution: 1080p" in (summary.text or "")

    # Without the photo the request cannot be confirmed.
    await user.press("Clear references", message=summary)
    summary = await user.wait_for_text("Photo to animate: not sent yet")
    assert "Send the photo to animate." in (summary.text or "")
    # (Free images do not pay for videos: the confirm button is the invoice's.)
    query = await user.press("Pay", message=summary)
    answer = await user.wait_callback_answer(query)
    assert answer.show_alert
    assert "Send the photo to animate first" in (answer.text or "")
    assert bot_runner.emulator.calls("sendInvoice") == []


async def test_start_shows_the_balance_and_buy_shows_the_packages(bot_runner: Any) -> None:
    await bot_runner.start(free_trial_images=3)
    user = bot_runner.emulator.user(user_id=7002, first_name="Bo", language_code="ru")
    await user.send_text("/start")
    welcome = await user.wait_for_text("Я Lumigram")
    text = welcome.text or ""
    assert "Ваш баланс" in text
    assert "Кредиты: 0" in text
    assert "Осталось бесплатных изображений: 3" in text
    assert "Подписка: нет" in text
    assert "🌐 Язык" in labels(welcome)  # the menu as before

    await user.send_text("/buy")
    packages = await user.wait_for_text("Пополнение")
    assert any("⭐" in label for label in labels(packages))
    menu = {c["command"]: c["description"] for c in bot_runner.emulator.commands(bot_runner.token)}
    assert menu["buy"] == "Credit packages"
    ru = bot_runner.emulator.commands(bot_runner.token, language_code="ru")
    assert {c["command"]: c["description"] for c in ru}["buy"] == "Пакеты кредитов"


def test_every_reason_a_photo_is_refused_has_its_own_text() -> None:
    from lumigram.bot import render

    i18n = build_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        texts = {reason: render.reference_problem(reason, 1) for reason in REASONS}
        assert "at least 300 pixels" in texts["dimensions"]
        assert "2.5" in texts["aspect"]
        assert "photo to animate" in texts["missing"]
    with i18n.context(), i18n.use_locale("ru"):
        ru = {reason: render.reference_problem(reason, 1) for reason in REASONS}
        assert "не меньше 300 пикселей" in ru["dimensions"]
    assert len(set(texts.values())) == len(set(ru.values())) == len(REASONS)


REASONS = ("type", "size", "count", "dimensions", "aspect", "missing")
