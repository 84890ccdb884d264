"""The Telegram channel of job events: progress, results, failures, cancellations.

Implements ``services.ports.JobEvents`` for jobs that came through Telegram, with an
aiogram Bot. Workers have no update to take a language from, so every text is
translated with the job's stored language. The job knows only its chat; the status
message, its text and the results' file ids are the bot's own (``TelegramJobMessages``).
Telegram refusing a message (a blocked bot, a deleted status message) never fails
the job.

Videos go out as streamable videos with their stored first frame as the thumbnail;
one over Telegram's 50 MB upload limit is offered as a download link instead (or,
without a way to make links, kept for /history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)
from aiogram.utils.i18n import I18n

from lumigram.bot import keyboards, render
from lumigram.bot.job_messages import TelegramJobMessages
from lumigram.catalog import Catalog
from lumigram.db.repositories.telegram import FileIds, StatusMessage
from lumigram.domain.generation import OutputKind
from lumigram.domain.jobs import Job, JobEvent, JobEventKind, ResultFile
from lumigram.imaging import thumbnail
from lumigram.services.ports import FileStorage

log = logging.getLogger(__name__)

MediaItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)
PREVIEW_SIDE = 2560  # Telegram photos: width + height <= 10000, well under 10 MB as JPEG
TELEGRAM_UPLOAD_LIMIT = 50 * 1024 * 1024  # what a bot may upload (the Bot API's limit)
LINK_SECONDS = 7 * 24 * 3600  # how long a download link for a too-large video works
# (storage key, seconds valid) -> (url, expires_at); None where no link can be made.
DownloadLink = Callable[[str, int], Awaitable[tuple[str, datetime] | None]]


class TelegramNotifier:
    def __init__(
        self,
        bot: Bot,
        i18n: I18n,
        catalog: Catalog,
        messages: TelegramJobMessages,
        storage: FileStorage,
        *,
        time_step: int = 3,
        mode_titles: dict[str, dict[str, str]] | None = None,
        download_link: DownloadLink | None = None,
    ) -> None:
        self._bot = bot
        self._download_link = download_link
        self.messages = messages
        self._saving: set[asyncio.Task[None]] = set()  # file ids being stored
        self._storage = storage
        self._i18n = i18n
        self._catalog = catalog
        self._time_step = max(1, time_step)
        self.mode_titles = mode_titles or {}

    @contextlib.contextmanager
    def _locale(self, job: Job) -> Iterator[None]:
        with self._i18n.context(), self._i18n.use_locale(job.language):
            yield

    def _model_name(self, job: Job) -> str:
        spec = self._catalog.get(job.model_id)
        return spec.name if spec else job.model_id

    def _is_video(self, job: Job) -> bool:
        """A video job: by its model's kind; by its provider if the model is gone."""
        spec = self._catalog.get(job.model_id)
        if spec is not None:
            return spec.capabilities.kind is OutputKind.VIDEO
        return job.provider == "kie"

    def _mode_title(self, job: Job) -> str:
        titles = self.mode_titles.get(job.mode, {})
        return titles.get(job.language) or titles.get("en") or job.mode

    async def publish(self, event: JobEvent) -> None:
        job = event.job
        match event.kind:
            case JobEventKind.PROGRESSED:
                await self.show_progress(job)
            case JobEventKind.SUCCEEDED:
                await self.deliver(job, list(event.outputs))
            case JobEventKind.FAILED:
                await self.failed(job)
            case JobEventKind.CANCELLED:
                await self.cancelled(job)
            case _:  # queued: the handler shows it; refunded: the money notifier tells
                pass

    # --- progress --------------------------------------------------------------
    def progress_text(self, job: Job) -> str:
        with self._locale(job):
            percent = round(job.progress * 100) if job.progress is not None else None
            started = job.started_at or job.created_at
            seconds = max(0, int(time.time() - started.timestamp()))
            # Elapsed time moves in steps, so the text (and the message) changes calmly.
            stepped = seconds - seconds % self._time_step
            if self._is_video(job):  # minutes, not seconds: where the provider has it
                return render.video_generating(job.provider_state, percent, stepped)
            return render.generating(percent, stepped)

    async def show_progress(self, job: Job) -> None:
        """Edit the status message, or send one if it is gone. Chat action meanwhile."""
        assert job.id is not None
        text = self.progress_text(job)
        status = await self.messages.status(job.id)
        if status is not None and status.text == text:
            return
        chat_id = _chat(job)
        await self.messages.record_text(job.id, chat_id, text)
        await self._chat_action(job)
        with self._locale(job):
            markup = keyboards.job_status(job)
        if status is not None and status.message_id is not None:
            try:
                await self._bot.edit_message_text(
                    text=text,
                    chat_id=chat_id,
                    message_id=status.message_id,
                    reply_markup=markup,
                )
                return
            except TelegramBadRequest as error:
                log.info("job %s: status message not editable (%s); sending anew", job.id, error)
            except TelegramAPIError as error:
                log.info("job %s: progress not shown: %s", job.id, error)
                return
        try:
            sent = await self._bot.send_message(chat_id, text, reply_markup=markup)
        except TelegramAPIError as error:
            log.info("job %s: progress not shown: %s", job.id, error)
            return
        await self.messages.remember(job.id, chat_id, sent.message_id)

    async def _chat_action(self, job: Job) -> None:
        action = ChatAction.RECORD_VIDEO if self._is_video(job) else ChatAction.UPLOAD_PHOTO
        with contextlib.suppress(TelegramAPIError):
            await self._bot.send_chat_action(_chat(job), action)

    # --- results -----------------------------------------------------------------
    async def deliver(self, job: Job, outputs: list[tuple[ResultFile, bytes]]) -> None:
        assert job.id is not None
        await self._remove_status(job)
        try:
            await self.send_results(job, _chat(job), list(outputs))
        except TelegramAPIError as error:
            # Blocked bot or similar: the results stay stored; /history can re-send them.
            log.warning("job %s: results not delivered: %s", job.id, error)

    async def resend(self, job: Job, chat_id: int) -> None:
        """A delivered job's results again: by Telegram file id where known, else
        uploaded from storage."""
        assert job.id is not None
        known = await self.messages.file_ids(job.id)
        outputs: list[tuple[ResultFile, bytes | None]] = []
        for index, result in enumerate(job.results):
            if result.is_video:  # read only if it is uploaded (see _send_video)
                outputs.append((result, None))
                continue
            ids = known.get(index)
            sent_before = ids is not None and ids.photo and ids.document
            outputs.append((result, None if sent_before else await self._storage.get(result.key)))
        await self.send_results(job, chat_id, outputs, known)

    async def send_results(
        self,
        job: Job,
        chat_id: int,
        outputs: Sequence[tuple[ResultFile, bytes | None]],
        known: dict[int, FileIds] | None = None,
    ) -> None:
        """Photos (previews) with a caption and buttons, then the originals as documents;
        videos as videos (``_send_videos``).

        Files that already have Telegram file ids are sent by id, never uploaded twice;
        the ids the files get are remembered.
        """
        assert job.id is not None
        known = known or {}
        if outputs and all(result.is_video for result, _ in outputs):
            await self._send_videos(job, chat_id, outputs, known)
            return
        with self._locale(job):
            caption = render.result_caption(
                job, self._model_name(job), self._mode_title(job), job.provider == "demo"
            )
            can_reference = any(
                m.capabilities.max_reference_images > 0 for m in self._catalog.models
            )
            buttons = keyboards.result(job.id, can_reference)
            originals_caption = render.originals()
        empty = FileIds(None, None)
        photos = [
            await self._photo_input(known.get(i, empty).photo, data)
            for i, (_, data) in enumerate(outputs)
        ]
        documents = [
            self._document_input(job, i, r, known.get(i, empty).document, d)
            for i, (r, d) in enumerate(outputs)
        ]
        if len(outputs) == 1:
            photo_message = await self._bot.send_photo(
                chat_id, photos[0], caption=caption, reply_markup=buttons
            )
            photo_ids = [_largest_photo(photo_message)]
            document_message = await self._bot.send_document(chat_id, documents[0])
            document_ids = [_document_id(document_message)]
        else:
            album: list[MediaItem] = [
                InputMediaPhoto(media=photo, caption=caption if i == 0 else None)
                for i, photo in enumerate(photos)
            ]
            photo_messages = await self._bot.send_media_group(chat_id, album)
            photo_ids = [_largest_photo(m) for m in photo_messages]
            files: list[MediaItem] = [
                InputMediaDocument(
                    media=doc, caption=originals_caption if i == len(documents) - 1 else None
                )
                for i, doc in enumerate(documents)
            ]
            document_messages = await self._bot.send_media_group(chat_id, files)
            document_ids = [_document_id(m) for m in document_messages]
            with self._locale(job):
                await self._bot.send_message(chat_id, caption, reply_markup=buttons)
        ids = {
            i: FileIds(
                photo_id or known.get(i, empty).photo,
                document_id or known.get(i, empty).document,
            )
            for i, (photo_id, document_id) in enumerate(zip(photo_ids, document_ids, strict=True))
        }
        self._remember(job.id, ids, known)

    def _remember(self, job_id: int, ids: dict[int, FileIds], known: dict[int, FileIds]) -> None:
        if ids != known:
            # In the background: the worker marks the job succeeded as soon as the files
            # are sent (a user who opens /history at once sees it done); until the ids
            # are stored a re-send just uploads again.
            task = asyncio.create_task(self.messages.set_file_ids(job_id, ids))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)

    # --- videos --------------------------------------------------------------------
    async def _send_videos(
        self,
        job: Job,
        chat_id: int,
        outputs: Sequence[tuple[ResultFile, bytes | None]],
        known: dict[int, FileIds],
    ) -> None:
        """Each video in its own message, no document copy; the caption and the buttons
        go with the last one.

        A video's Telegram file id is kept in the ``photo`` slot of its ``FileIds``
        (column ``photo_file_id``; ``document`` stays None): a re-send by /history then
        sends it by id instead of uploading it again.
        """
        assert job.id is not None
        with self._locale(job):
            caption = render.result_caption(
                job, self._model_name(job), self._mode_title(job), job.provider == "demo"
            )
            buttons = keyboards.result(job.id, can_reference=False)  # a video is no reference
        ids = dict(known)
        last = len(outputs) - 1
        for index, (result, data) in enumerate(outputs):
            file_id = await self._send_video(
                job,
                chat_id,
                index,
                result,
                data,
                known.get(index),
                caption if index == last else None,
                buttons if index == last else None,
            )
            if file_id is not None:
                ids[index] = FileIds(file_id, None)
        self._remember(job.id, ids, known)

    async def _send_video(
        self,
        job: Job,
        chat_id: int,
        index: int,
        result: ResultFile,
        data: bytes | None,
        known: FileIds | None,
        caption: str | None,
        buttons: InlineKeyboardMarkup | None,
    ) -> str | None:
        """One video, by its file id when it has one, else uploaded; over the upload
        limit, a download link. Its Telegram file id, or None when no video was sent."""
        video: str | BufferedInputFile
        thumb: BufferedInputFile | None = None
        if known is not None and known.photo:
            video = known.photo  # sent before: no upload (a thumbnail can't go with an id)
        else:
            size = result.size
            if size is None and data is not None:
                size = len(data)
            if size is not None and size > TELEGRAM_UPLOAD_LIMIT:
                await self._too_large(job, chat_id, result, caption, buttons)
                return None
            if data is None:
                data = await self._storage.get(result.key)
                if len(data) > TELEGRAM_UPLOAD_LIMIT:
                    await self._too_large(job, chat_id, result, caption, buttons)
                    return None
            video = BufferedInputFile(data, filename=f"lumigram-{job.id}-{index + 1}.mp4")
            thumb = await self._thumbnail(job, result)
            with contextlib.suppress(TelegramAPIError):
                await self._bot.send_chat_action(chat_id, ChatAction.UPLOAD_VIDEO)
        try:
            message = await self._bot.send_video(
                chat_id,
                video,
                duration=round(result.duration) if result.duration is not None else None,
                width=result.width,
                height=result.height,
                thumbnail=thumb,
                supports_streaming=True,
                caption=caption,
                reply_markup=buttons,
            )
        except TelegramEntityTooLarge:  # Telegram counted the upload differently
            await self._too_large(job, chat_id, result, caption, buttons)
            return None
        return _video_id(message) or (known.photo if known is not None else None)

    async def _thumbnail(self, job: Job, result: ResultFile) -> BufferedInputFile | None:
        """The stored first frame; none if it is missing (Telegram then makes its own)."""
        if not result.thumbnail_key:
            return None
        try:
            data = await self._storage.get(result.thumbnail_key)
        except Exception as error:  # a missing thumbnail is not worth failing the delivery
            log.warning("job %s: thumbnail %s not read: %s", job.id, result.thumbnail_key, error)
            return None
        return BufferedInputFile(data, filename="thumb.jpg")

    async def _too_large(
        self,
        job: Job,
        chat_id: int,
        result: ResultFile,
        caption: str | None,
        buttons: InlineKeyboardMarkup | None,
    ) -> None:
        """Too big for a bot to upload: a download link, or where it is kept."""
        link = None
        if self._download_link is not None:
            try:
                link = await self._download_link(result.key, LINK_SECONDS)
            except Exception as error:  # the user still hears where the video is
                log.warning("job %s: no download link for %s: %s", job.id, result.key, error)
        with self._locale(job):
            if link is not None:
                url, expires_at = link
                notice = render.video_link(url, expires_at, LINK_SECONDS // 86400)
            else:
                notice = render.video_too_large()
        if link is None:  # the user paid for a video they cannot download from Telegram
            log.error(
                "OPERATOR ALERT: job %s: a video over 50 MB and no way to link it; set "
                "PUBLIC_BASE_URL (signed /files links) or use S3 storage",
                job.id,
            )
        text = f"{caption}\n\n{notice}" if caption else notice
        await self._bot.send_message(chat_id, text, reply_markup=buttons)

    async def _photo_input(
        self, file_id: str | None, data: bytes | None
    ) -> str | BufferedInputFile:
        if file_id:
            return file_id
        assert data is not None
        preview = await asyncio.to_thread(thumbnail, data, PREVIEW_SIDE)
        return BufferedInputFile(preview, filename="preview.jpg")

    @staticmethod
    def _document_input(
        job: Job, index: int, result: ResultFile, file_id: str | None, data: bytes | None
    ) -> str | BufferedInputFile:
        if file_id:
            return file_id
        assert data is not None
        extension = result.key.rsplit(".", 1)[-1]
        return BufferedInputFile(data, filename=f"lumigram-{job.id}-{index + 1}.{extension}")

    # --- endings -------------------------------------------------------------------
    async def failed(self, job: Job) -> None:
        assert job.id is not None
        with self._locale(job):
            text = render.failure(job)
            markup = keyboards.failed(job.id)
        await self._replace_status(job, text, markup)

    async def cancelled(self, job: Job) -> None:
        assert job.id is not None
        with self._locale(job):
            text = render.cancelled()
        await self._replace_status(job, text, None)

    async def _status(self, job: Job) -> StatusMessage | None:
        assert job.id is not None
        return await self.messages.status(job.id)

    async def _replace_status(
        self, job: Job, text: str, reply_markup: InlineKeyboardMarkup | None
    ) -> None:
        status = await self._status(job)
        chat_id = _chat(job)
        if status is not None and status.message_id is not None:
            try:
                await self._bot.edit_message_text(
                    text=text,
                    chat_id=chat_id,
                    message_id=status.message_id,
                    reply_markup=reply_markup,
                )
                return
            except TelegramAPIError:
                pass
        with contextlib.suppress(TelegramAPIError):
            await self._bot.send_message(chat_id, text, reply_markup=reply_markup)

    async def _remove_status(self, job: Job) -> None:
        status = await self._status(job)
        if status is not None and status.message_id is not None:
            with contextlib.suppress(TelegramAPIError):
                await self._bot.delete_message(_chat(job), status.message_id)


def _chat(job: Job) -> int:
    """The chat a Telegram job came from (its channel address)."""
    return int(job.reply_to)


def _largest_photo(message: Message) -> str | None:
    return message.photo[-1].file_id if message.photo else None


def _document_id(message: Message) -> str | None:
    return message.document.file_id if message.document else None


def _video_id(message: Message) -> str | None:
    """The sent video's file id; None if Telegram made it something else (a document's
    id could not be sent as a video again, so it is not kept)."""
    return message.video.file_id if message.video else None
