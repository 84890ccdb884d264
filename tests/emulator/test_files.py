"""Files: multipart uploads, HTTP URLs, file_id reuse, downloads and size limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import (
    BufferedInputFile,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
)
from aiohttp import web

from lumigram.emulator import TelegramEmulator
from lumigram.emulator.limits import MB

from .conftest import RawApi, png_bytes

PNG = png_bytes(400, 300)


@pytest.fixture
async def files_site() -> AsyncIterator[str]:
    """A tiny HTTP server on 127.0.0.1 with files for sending by URL."""
    files = {
        "/cat.png": (PNG, "image/png"),
        "/report.pdf": (b"%PDF-1.4 test", "application/pdf"),
        "/huge.jpg": (b"\xff" * (5 * MB + 1), "image/jpeg"),
    }

    async def serve(request: web.Request) -> web.Response:
        body, content_type = files[request.path]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    for path in files:
        app.router.add_get(path, serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_photo_upload_gets_real_sizes_and_downloads(
    bot: Bot, emu: TelegramEmulator, token: str
) -> None:
    chat = emu.user(1001).id
    message = await bot.send_photo(
        chat, BufferedInputFile(PNG, "cat.png"), caption="<b>Cat</b>", parse_mode="HTML"
    )
    assert message.photo is not None
    assert [(p.width, p.height) for p in message.photo] == [(90, 68), (320, 240), (400, 300)]
    assert message.caption == "Cat"
    assert message.caption_entities
    assert message.caption_entities[0].type == "bold"
    largest = message.photo[-1]
    assert len({p.file_unique_id for p in message.photo}) == 3
    info = await bot.get_file(largest.file_id)
    assert info.file_size == len(PNG)
    assert info.file_path
    downloaded = await bot.download_file(info.file_path)
    assert downloaded is not None
    assert downloaded.read() == PNG
    assert emu.file_bytes(largest.file_id) == PNG
    # Reusing the file_id sends the same photo again.
    again = await bot.send_photo(chat, largest.file_id)
    assert again.photo is not None
    assert again.photo[-1].file_id == largest.file_id
    sent = emu.user(1001).transcript[-1]
    assert sent.kind == "photo"
    assert sent.file_id == largest.file_id


async def test_bad_photos_are_refused(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(chat, BufferedInputFile(b"definitely not an image", "x.jpg"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(chat, BufferedInputFile(png_bytes(2100, 100), "strip.png"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(chat, "AgACAgIAAxkBAAIBunknown")
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.send_photo(chat, BufferedInputFile(b"\0" * (10 * MB + 1), "big.jpg"))


async def test_documents_videos_animations(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    doc = await bot.send_document(
        user.id, BufferedInputFile(b"%PDF-1.4", "invoice.pdf"), caption="Your receipt"
    )
    assert doc.document is not None
    assert doc.document.file_name == "invoice.pdf"
    assert doc.document.mime_type == "application/pdf"
    assert doc.document.file_size == 8
    video = await bot.send_video(
        user.id,
        BufferedInputFile(b"\0\0\0\x18ftypmp42", "clip.mp4"),
        width=640,
        height=360,
        duration=5,
    )
    assert video.video is not None
    assert (video.video.width, video.video.duration) == (640, 5)
    gif = await bot.send_animation(user.id, BufferedInputFile(b"GIF89a....", "loop.gif"))
    assert gif.animation is not None
    assert gif.document is not None
    assert [m.kind for m in user.bot_messages] == ["document", "video", "animation"]
    with pytest.raises(TelegramBadRequest, match="type of file mismatch"):
        await bot.send_photo(user.id, doc.document.file_id)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_document(user.id, doc.document.file_id, caption="x" * 1025)
    ok = await bot.send_document(user.id, doc.document.file_id, caption="x" * 1024)
    assert ok.caption == "x" * 1024


async def test_files_by_url(bot: Bot, emu: TelegramEmulator, files_site: str) -> None:
    chat = emu.user(1001).id
    photo = await bot.send_photo(chat, f"{files_site}/cat.png")
    assert photo.photo is not None
    assert (photo.photo[-1].width, photo.photo[-1].height) == (400, 300)
    doc = await bot.send_document(chat, f"{files_site}/report.pdf")
    assert doc.document is not None
    assert doc.document.file_name == "report.pdf"
    assert doc.document.mime_type == "application/pdf"
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.send_photo(chat, f"{files_site}/huge.jpg")
    with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
        await bot.send_document(chat, f"{files_site}/missing.pdf")


async def test_upload_and_download_size_limits(bot: Bot, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(chat, BufferedInputFile(b"\0" * (50 * MB + 1), "huge.bin"))
    large = await bot.send_document(chat, BufferedInputFile(b"\0" * (20 * MB + 1), "large.bin"))
    assert large.document is not None
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(large.document.file_id)


async def test_media_groups(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    photo = InputMediaPhoto(media=BufferedInputFile(PNG, "a.png"), caption="first")
    messages = await bot.send_media_group(
        user.id,
        [
            photo,
            InputMediaPhoto(media=BufferedInputFile(png_bytes(10, 10), "b.png")),
            InputMediaVideo(media=BufferedInputFile(b"video", "c.mp4")),
        ],
    )
    assert len(messages) == 3
    assert len({m.media_group_id for m in messages}) == 1
    assert messages[0].caption == "first"
    assert messages[2].video is not None
    assert [m.kind for m in user.bot_messages] == ["media_group item"] * 3
    assert [m.media_type for m in user.bot_messages] == ["photo", "photo", "video"]
    with pytest.raises(TelegramBadRequest, match="2-10 items"):
        await bot.send_media_group(user.id, [InputMediaPhoto(media=messages[0].photo[-1].file_id)])  # type: ignore[index]
    eleven = [InputMediaPhoto(media=messages[0].photo[-1].file_id)] * 11  # type: ignore[index]
    with pytest.raises(TelegramBadRequest, match="2-10 items"):
        await bot.send_media_group(user.id, eleven)  # type: ignore[arg-type]
    with pytest.raises(TelegramBadRequest, match="document can't be mixed"):
        await bot.send_media_group(
            user.id,
            [
                InputMediaDocument(media=BufferedInputFile(b"1", "1.txt")),
                InputMediaPhoto(media=BufferedInputFile(PNG, "p.png")),
            ],
        )


async def test_media_group_attach_must_exist(api: RawApi, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    description = await api.error(
        "sendMediaGroup",
        chat_id=chat,
        media=[
            {"type": "photo", "media": "attach://nothing"},
            {"type": "photo", "media": "attach://nope"},
        ],
    )
    assert description == "Bad Request: wrong file identifier/HTTP URL specified"


async def test_edit_caption_and_media(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    sent = await bot.send_photo(user.id, BufferedInputFile(PNG, "a.png"), caption="old")
    await bot.edit_message_caption(chat_id=user.id, message_id=sent.message_id, caption="new")
    assert user.bot_messages[-1].text == "new"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(chat_id=user.id, message_id=sent.message_id, caption="new")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.edit_message_caption(
            chat_id=user.id, message_id=sent.message_id, caption="y" * 1025
        )
    edited = await bot.edit_message_media(
        InputMediaPhoto(
            media=BufferedInputFile(png_bytes(50, 50, "green"), "g.png"), caption="final"
        ),
        chat_id=user.id,
        message_id=sent.message_id,
    )
    assert not isinstance(edited, bool)
    assert edited.photo is not None
    assert edited.photo[-1].width == 50
    assert user.bot_messages[-1].text == "final"
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("t", chat_id=user.id, message_id=sent.message_id)


async def test_user_uploads_reach_the_bot(bot: Bot, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    await user.send_photo(PNG, caption="my selfie")
    await user.send_document(b"hello", filename="notes.txt", mime_type="text/plain")
    updates = await bot.get_updates(timeout=0)
    photo_message, doc_message = (u.message for u in updates)
    assert photo_message is not None
    assert photo_message.photo
    assert photo_message.caption == "my selfie"
    assert doc_message is not None
    assert doc_message.document
    assert doc_message.document.file_name == "notes.txt"
    downloaded = await bot.download(photo_message.photo[-1].file_id)
    assert downloaded is not None
    assert downloaded.read() == PNG
    with pytest.raises(ValueError, match="IMAGE_PROCESS_FAILED"):
        await user.send_photo(b"not an image")
