"""The reconciliation's own rows: its cursor, and the transactions nothing matched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.stars import StarTransaction

S = tables.app_state.c
I = tables.star_transaction_issues.c  # noqa: E741 - the table's columns, as elsewhere


class StarsSyncRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self, table: Table) -> Any:
        dialect = self._session.get_bind().dialect.name
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

    async def get_state(self, key: str) -> str | None:
        value = await self._session.scalar(select(S.value).where(S.key == key))
        return str(value) if value is not None else None

    async def set_state(self, key: str, value: str, now: datetime) -> None:
        await self._session.execute(
            self._insert(tables.app_state)
            .values(key=key, value=value, updated_at=now)
            .on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now})
        )

    async def add_issue(self, transaction: StarTransaction, problem: str, now: datetime) -> bool:
        """Keep a transaction that matches nothing; False if it was kept before."""
        result = await self._session.execute(
            self._insert(tables.star_transaction_issues)
            .values(
                transaction_id=transaction.id[:128],
                direction=transaction.direction.value,
                amount=transaction.amount,
                user_id=transaction.user_id,
                partner=transaction.partner[:32],
                invoice_payload=(transaction.invoice_payload or "")[:128] or None,
                problem=problem[:256],
                transaction_date=transaction.date,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["transaction_id", "direction"])
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def open_issues(self, limit: int = 100) -> list[dict[str, object]]:
        rows = await self._session.execute(
            select(tables.star_transaction_issues)
            .where(I.resolved_at.is_(None))
            .order_by(I.id)
            .limit(limit)
        )
        return [dict(row) for row in rows.mappings()]
