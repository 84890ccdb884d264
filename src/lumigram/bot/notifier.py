"""The Telegram channel of job events: progress, results, failures, cancellations.

Implements ``services.ports.JobEvents`` for jobs that came through Telegram, with an
aiogram Bot. Workers have no update to take a language from, so every text is
translated with the job's stored language. The job knows only its chat; the status
message, its text and the results' file ids are the bot's own (``TelegramJobMessages``).
Telegram refusing a message (a blocked bot, a deleted status message) never fails
the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
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
from lumigram.domain.jobs import Job, JobEvent, JobEventKind, ResultFile
from lumigram.imaging import thumbnail
from lumigram.services.ports import FileStorage

log = logging.getLogger(__name__)

MediaItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)
PREVIEW_SIDE = 2560  # Telegram photos: width + height <= 10000, well under 10 MB as JPEG


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
    ) -> None:
        self._bot = bot
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
            return render.generating(percent, seconds - seconds % self._time_step)

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
        with contextlib.suppress(TelegramAPIError):
            await self._bot.send_chat_action(_chat(job), ChatAction.UPLOAD_PHOTO)

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
        """Photos (previews) with a caption and buttons, then the originals as documents.

        Files that already have Telegram file ids are sent by id, never uploaded twice;
        the ids the files get are remembered.
        """
        assert job.id is not None
        known = known or {}
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
        if ids != known:
            # In the background: the worker marks the job succeeded as soon as the files
            # are sent (a user who opens /history at once sees it done); until the ids
            # are stored a re-send just uploads again.
            task = asyncio.create_task(self.messages.set_file_ids(job.id, ids))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)

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
