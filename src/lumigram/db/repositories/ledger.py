"""Ledger rows, balances and holds.

A balance moves only in ``apply``, in the same transaction as the ledger row
that explains it: the row is inserted (its unique idempotency key makes a
replay a no-op) and the balance is changed by a conditional UPDATE that
refuses to go below zero. Both run inside a savepoint, so a refusal leaves the
surrounding transaction as it was. On PostgreSQL the UPDATE takes the row lock,
so concurrent spenders queue up instead of overdrawing; on SQLite writers are
serialised by BEGIN IMMEDIATE. A CHECK constraint backs it up either way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, String, cast, exists, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.db import tables
from lumigram.domain.invoices import Product
from lumigram.domain.jobs import JobStatus
from lumigram.domain.money import (
    ALL_ACCOUNTS,
    HELD_SUFFIX,
    Account,
    Hold,
    HoldStatus,
    InsufficientFundsError,
    LedgerEntry,
)

B = tables.balances.c
L = tables.ledger_entries.c
H = tables.holds.c


class _DuplicateError(Exception):
    """Internal: the entry exists already; roll the savepoint back."""


class _OverdraftError(Exception):
    """Internal: the balance would go negative; roll the savepoint back."""


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def apply(self, entry: LedgerEntry) -> bool:
        if entry.amount == 0:
            raise ValueError("a ledger entry moves a non-zero amount")
        await self._ensure_balance(entry.user_id, entry.account)
        available = 0
        try:
            # Leaving the savepoint by an exception undoes both writes (and the
            # session forgets the entry), so a refusal changes nothing.
            async with self._session.begin_nested():
                self._session.add(entry)
                try:
                    await self._session.flush()
                except IntegrityError:
                    raise _DuplicateError from None
                result = await self._session.execute(
                    update(tables.balances)
                    .where(
                        B.user_id == entry.user_id,
                        B.account == entry.account,
                        B.amount + entry.amount >= 0,
                    )
                    .values(amount=B.amount + entry.amount, updated_at=entry.created_at)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    available = await self._balance(entry.user_id, entry.account)
                    raise _OverdraftError
        except _DuplicateError:
            return False
        except _OverdraftError:
            raise InsufficientFundsError(entry.account, -entry.amount, available) from None
        return True

    async def _ensure_balance(self, user_id: int, account: str) -> None:
        values = {
            "user_id": user_id,
            "account": account,
            "amount": 0,
            "updated_at": datetime.now(UTC),
        }
        dialect = self._session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await self._session.execute(insert(tables.balances).values(values).on_conflict_do_nothing())

    async def _balance(self, user_id: int, account: str) -> int:
        amount = await self._session.scalar(
            select(B.amount).where(B.user_id == user_id, B.account == account)
        )
        return int(amount or 0)

    async def balances(self, user_id: int) -> dict[str, int]:
        rows = await self._session.execute(select(B.account, B.amount).where(B.user_id == user_id))
        found = {account: int(amount) for account, amount in rows.all()}
        return {account: found.get(account, 0) for account in ALL_ACCOUNTS}

    async def get_hold(self, job_id: int) -> Hold | None:
        return (await self._session.scalars(select(Hold).where(H.job_id == job_id))).one_or_none()

    async def add_hold(self, hold: Hold) -> bool:
        try:
            async with self._session.begin_nested():
                self._session.add(hold)
                await self._session.flush()
        except IntegrityError:
            return False
        return True

    async def total(self, user_id: int, kinds: tuple[str, ...]) -> int:
        """The sum of the user's entries of these kinds (e.g. referral bonuses less reversals)."""
        amount = await self._session.scalar(
            select(func.coalesce(func.sum(L.amount), 0)).where(
                L.user_id == user_id, L.kind.in_(kinds)
            )
        )
        return int(amount or 0)

    async def amount_of(self, key: str) -> int:
        amount = await self._session.scalar(select(L.amount).where(L.idempotency_key == key))
        return int(amount or 0)

    async def open_holds_of_finished_jobs(self, limit: int) -> list[tuple[Hold, str, int]]:
        """Open holds whose job has ended: (hold, job status, outputs delivered)."""
        jobs = tables.jobs.c
        rows = await self._session.execute(
            select(Hold, jobs.status, jobs.result_files)
            .join(tables.jobs, jobs.id == H.job_id)
            .where(
                H.status == HoldStatus.OPEN.value,
                jobs.status.in_(("succeeded", "failed", "cancelled")),
            )
            .limit(limit)
        )
        return [(hold, status, len(results or [])) for hold, status, results in rows.all()]

    async def captured_holds(
        self, user_id: int, limit: int, accounts: tuple[str, ...]
    ) -> list[Hold]:
        """The user's most recent jobs that cost something, paid from one of ``accounts``."""
        result = await self._session.scalars(
            select(Hold)
            .where(
                H.user_id == user_id,
                H.status == HoldStatus.CAPTURED.value,
                H.captured > 0,
                H.account.in_(accounts),
            )
            .order_by(H.id.desc())
            .limit(limit)
        )
        return list(result)

    async def discrepancies(self) -> list[str]:
        """Every check reads one snapshot: on PostgreSQL (READ COMMITTED by default) each
        statement would otherwise see what committed since the one before, and a capture
        committing in between (a running bot) would look like a difference."""
        if not self._session.in_transaction() and self._session.get_bind().dialect.name == (
            "postgresql"
        ):
            await self._session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        problems: list[str] = []
        sums = (
            select(L.user_id, L.account, func.sum(L.amount).label("total"))
            .group_by(L.user_id, L.account)
            .subquery()
        )
        # Every balance against the sum of its entries (a missing side counts as zero).
        rows = await self._session.execute(
            select(B.user_id, B.account, B.amount, sums.c.total).join(
                sums,
                (sums.c.user_id == B.user_id) & (sums.c.account == B.account),
                isouter=True,
            )
        )
        for user_id, account, amount, total in rows.all():
            if int(amount) != int(total or 0):
                problems.append(
                    f"user {user_id} {account}: balance {amount} but ledger sums to {total or 0}"
                )
            if amount < 0:
                problems.append(f"user {user_id} {account}: negative balance {amount}")
        orphans = await self._session.execute(
            select(sums.c.user_id, sums.c.account, sums.c.total)
            .select_from(sums)
            .outerjoin(
                tables.balances,
                (sums.c.user_id == B.user_id) & (sums.c.account == B.account),
            )
            .where(B.user_id.is_(None), sums.c.total != 0)
        )
        for user_id, account, total in orphans.all():
            problems.append(f"user {user_id} {account}: ledger sums to {total} with no balance")
        # What is held must equal the open holds.
        held = await self._session.execute(
            select(H.user_id, H.account, func.sum(H.amount))
            .where(H.status == HoldStatus.OPEN.value)
            .group_by(H.user_id, H.account)
        )
        open_holds = {(u, f"{a}{HELD_SUFFIX}"): int(total) for u, a, total in held.all()}
        held_rows = await self._session.execute(
            select(B.user_id, B.account, B.amount).where(B.account.like(f"%{HELD_SUFFIX}"))
        )
        for user_id, account, amount in held_rows.all():
            expected = open_holds.pop((user_id, account), 0)
            if int(amount) != expected:
                problems.append(
                    f"user {user_id} {account}: {amount} held but open holds total {expected}"
                )
        for (user_id, account), total in open_holds.items():
            problems.append(f"user {user_id} {account}: open holds of {total} but nothing held")
        problems.extend(await self._unfulfilled_payments())
        return problems

    async def _unfulfilled_payments(self) -> list[str]:
        """Every recorded payment has what it paid for, in the ledger: a package its
        credits, a subscription its period's images, a single generation a job that left
        ``awaiting_payment`` with a hold on the Stars, or its refund."""
        P, J = tables.payments.c, tables.jobs.c  # noqa: N806 - table columns, as above

        def entry(prefix: str) -> ColumnElement[bool]:
            return exists().where(
                L.idempotency_key == literal(prefix) + P.telegram_payment_charge_id
            )

        held = exists().where(
            H.job_id == J.id,
            H.account == Account.STARS.value,
            J.status != JobStatus.AWAITING_PAYMENT.value,
        )
        job_ran = exists().where(cast(J.id, String) == P.product_ref, held)
        rules = (
            (Product.PACKAGE.value, entry("charge:"), "no credits were added"),
            (Product.SUBSCRIPTION.value, entry("subscription:"), "no subscription period"),
            (Product.SINGLE.value, entry("charge:"), "its Stars were not recorded"),
            (
                Product.SINGLE.value,
                or_(job_ran, entry("refund:")),
                "its generation neither ran nor was refunded",
            ),
        )
        problems: list[str] = []
        for product, fulfilled, what in rules:
            rows = await self._session.execute(
                select(P.id, P.telegram_payment_charge_id, P.user_id).where(
                    P.product == product, ~fulfilled
                )
            )
            problems.extend(
                f"payment {payment_id} ({charge}) of user {user_id}: {what}"
                for payment_id, charge, user_id in rows.all()
            )
        return problems
