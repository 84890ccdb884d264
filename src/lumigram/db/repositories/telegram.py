"""The Telegram channel's own ids: a job's status message and its results' file ids."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables

M = tables.telegram_job_messages.c
F = tables.telegram_files.c


@dataclass(frozen=True, slots=True)
class StatusMessage:
    chat_id: int
    message_id: int | None
    text: str | None


@dataclass(frozen=True, slots=True)
class FileIds:
    photo: str | None
    document: str | None


class TelegramRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def status(self, job_id: int) -> StatusMessage | None:
        row = (
            await self._session.execute(
                select(M.chat_id, M.status_message_id, M.status_text).where(M.job_id == job_id)
            )
        ).one_or_none()
        return None if row is None else StatusMessage(row[0], row[1], row[2])

    async def set_status(
        self, job_id: int, chat_id: int, *, message_id: int | None = None, text: str | None = None
    ) -> None:
        """Remember the status message (and/or its text); only the given fields change."""
        values: dict[str, object] = {"chat_id": chat_id}
        if message_id is not None:
            values["status_message_id"] = message_id
        if text is not None:
            values["status_text"] = text
        # One upsert: the bot (the status message) and a worker (its text) may write the
        # same job's row at the same moment from two processes.
        dialect = self._session.get_bind().dialect.name
        upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(
            tables.telegram_job_messages
        )
        await self._session.execute(
            upsert.values(job_id=job_id, **values).on_conflict_do_update(
                index_elements=["job_id"], set_=values
            )
        )

    async def file_ids(self, job_id: int) -> dict[int, FileIds]:
        rows = await self._session.execute(
            select(F.position, F.photo_file_id, F.document_file_id).where(F.job_id == job_id)
        )
        return {position: FileIds(photo, document) for position, photo, document in rows}

    async def set_file_ids(self, job_id: int, ids: dict[int, FileIds]) -> None:
        if not ids:
            return
        await self._session.execute(
            delete(tables.telegram_files).where(F.job_id == job_id, F.position.in_(list(ids)))
        )
        await self._session.execute(
            insert(tables.telegram_files),
            [
                {
                    "job_id": job_id,
                    "position": position,
                    "photo_file_id": file.photo,
                    "document_file_id": file.document,
                }
                for position, file in ids.items()
            ],
        )
