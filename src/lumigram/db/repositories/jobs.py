from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.jobs import ACTIVE_STATUSES, STEP_FIELDS, Job, JobStatus

J = tables.jobs.c
ACTIVE = [status.value for status in ACTIVE_STATUSES]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, job: Job) -> None:
        self._session.add(job)
        await self._session.flush()  # assigns the id

    async def get(self, job_id: int) -> Job | None:
        return await self._session.get(Job, job_id, populate_existing=True)

    async def lock_user(self, user_id: int) -> None:
        # FOR UPDATE is a no-op on SQLite, where BEGIN IMMEDIATE already serialises writers.
        await self._session.execute(
            select(tables.users.c.id).where(tables.users.c.id == user_id).with_for_update()
        )

    async def active_for_user(self, user_id: int) -> list[Job]:
        result = await self._session.scalars(
            select(Job).where(J.user_id == user_id, J.status.in_(ACTIVE)).order_by(J.id)
        )
        return list(result)

    async def recent_for_user(self, user_id: int, limit: int) -> list[Job]:
        result = await self._session.scalars(
            select(Job).where(J.user_id == user_id).order_by(J.id.desc()).limit(limit)
        )
        return list(result)

    async def claim(
        self, job_id: int, *, now: datetime, lease_until: datetime, token: str
    ) -> Job | None:
        statement = (
            update(Job)
            .where(
                J.id == job_id,
                J.status.in_(ACTIVE),
                J.next_attempt_at <= now,
                or_(J.lease_expires_at.is_(None), J.lease_expires_at < now),
            )
            .values(
                lease_token=token,
                lease_expires_at=lease_until,
                status=JobStatus.RUNNING.value,
                started_at=func.coalesce(J.started_at, now),
                updated_at=now,
            )
            .returning(Job)
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(statement)).one_or_none()

    async def by_idempotency_key(self, api_key_id: int, key: str) -> Job | None:
        return (
            await self._session.scalars(
                select(Job).where(J.api_key_id == api_key_id, J.idempotency_key == key)
            )
        ).one_or_none()

    async def save_leased(self, job: Job, token: str) -> bool:
        """Write the job's step fields (its typed state change), if ``token`` still holds
        the lease of the active job; False: cancelled or taken over meanwhile."""
        return await self.update_leased(
            job.id or 0, token, {name: getattr(job, name) for name in STEP_FIELDS}
        )

    async def update_leased(self, job_id: int, token: str, values: dict[str, Any]) -> bool:
        result = await self._session.execute(
            update(tables.jobs)
            .where(J.id == job_id, J.lease_token == token, J.status.in_(ACTIVE))
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_lease(self, job_id: int, token: str, until: datetime) -> bool:
        """Extend ``token``'s lease of the active job; False: lost (cancelled, taken)."""
        return await self.update_leased(job_id, token, {"lease_expires_at": until})

    async def release_lease(self, job_id: int, token: str) -> bool:
        """Hand the job back: due now for any worker (a worker shutting down)."""
        return await self.update_leased(
            job_id, token, {"lease_token": None, "lease_expires_at": None}
        )

    async def cancel_active(self, job_id: int, *, user_id: int | None, now: datetime) -> Job | None:
        conditions = [J.id == job_id, J.status.in_(ACTIVE)]
        if user_id is not None:
            conditions.append(J.user_id == user_id)
        statement = (
            update(Job)
            .where(*conditions)
            .values(
                status=JobStatus.CANCELLED.value,
                lease_token=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
            .returning(Job)
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(statement)).one_or_none()

    async def cancel_awaiting_payment(
        self, user_id: int, *, now: datetime, before: datetime | None = None
    ) -> int:
        """Cancel the user's unpaid jobs (their invoices go stale); all users' with ``before``."""
        conditions = [J.status == JobStatus.AWAITING_PAYMENT.value]
        if user_id:
            conditions.append(J.user_id == user_id)
        if before is not None:
            conditions.append(J.created_at < before)
        result = await self._session.execute(
            update(tables.jobs)
            .where(*conditions)
            .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def start_paid(self, job_id: int, *, now: datetime) -> Job | None:
        """An awaiting-payment job becomes queued (conditional: only once)."""
        statement = (
            update(Job)
            .where(J.id == job_id, J.status == JobStatus.AWAITING_PAYMENT.value)
            .values(status=JobStatus.QUEUED.value, next_attempt_at=now, updated_at=now)
            .returning(Job)
            .execution_options(populate_existing=True)
        )
        return (await self._session.scalars(statement)).one_or_none()

    async def due(self, now: datetime, limit: int) -> list[int]:
        result = await self._session.scalars(
            select(J.id)
            .where(
                J.status.in_(ACTIVE),
                J.next_attempt_at <= now,
                or_(J.lease_expires_at.is_(None), J.lease_expires_at < now),
            )
            .order_by(J.priority.desc(), J.next_attempt_at)
            .limit(limit)
        )
        return list(result)

    async def release_all_leases(self) -> int:
        result = await self._session.execute(
            update(tables.jobs)
            .where(J.status.in_(ACTIVE), J.lease_token.is_not(None))
            .values(lease_token=None, lease_expires_at=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def queue_position(self, job: Job) -> int:
        ahead = await self._session.scalar(
            select(func.count())
            .select_from(tables.jobs)
            .where(
                J.status == JobStatus.QUEUED.value,
                or_(
                    J.priority > job.priority,
                    and_(J.priority == job.priority, J.id < (job.id or 0)),
                ),
            )
        )
        return int(ahead or 0) + 1
