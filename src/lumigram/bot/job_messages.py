"""The bot's own record of a job's Telegram ids, each read or write a short transaction.

A job knows only its chat (``Job.reply_to``); which message shows its status, the text
it shows, and the file ids its results got live here (tables ``telegram_job_messages``
and ``telegram_files``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db.repositories.telegram import FileIds, StatusMessage, TelegramRepository


class TelegramJobMessages:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        reader: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._reader = reader or sessionmaker  # reads take no write lock

    async def status(self, job_id: int) -> StatusMessage | None:
        async with self._reader() as session:
            return await TelegramRepository(session).status(job_id)

    async def remember(self, job_id: int, chat_id: int, message_id: int) -> None:
        """This message shows the job's status from now on."""
        async with self._sessionmaker() as session:
            await TelegramRepository(session).set_status(job_id, chat_id, message_id=message_id)
            await session.commit()

    async def record_text(self, job_id: int, chat_id: int, text: str) -> None:
        """Recorded before it is sent, so a worker that dies in between never sends the
        same text again (Telegram refuses an edit that changes nothing)."""
        async with self._sessionmaker() as session:
            await TelegramRepository(session).set_status(job_id, chat_id, text=text)
            await session.commit()

    async def file_ids(self, job_id: int) -> dict[int, FileIds]:
        async with self._reader() as session:
            return await TelegramRepository(session).file_ids(job_id)

    async def set_file_ids(self, job_id: int, ids: dict[int, FileIds]) -> None:
        async with self._sessionmaker() as session:
            await TelegramRepository(session).set_file_ids(job_id, ids)
            await session.commit()
