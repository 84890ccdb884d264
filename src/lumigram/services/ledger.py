"""Moving money: the building blocks every money use case is made of.

``Ledger`` never commits: the use case that calls it (a payment, a job's
lifecycle, an admin adjustment) commits the ledger rows together with the state
they pay for. Each movement carries an idempotency key derived from what caused
it (a Telegram charge id, a job id), so a replayed update or a retried step
finds its key taken and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumigram.domain.money import (
    Account,
    EntryKind,
    Funding,
    Hold,
    HoldStatus,
    LedgerEntry,
    capture_amount,
)
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import LedgerGateway


@dataclass(frozen=True, slots=True)
class Reference:
    """What caused a movement; stored on its ledger rows."""

    payment_id: int | None = None
    job_id: int | None = None
    admin_id: int | None = None
    note: str | None = None


class Ledger:
    def __init__(self, gateway: LedgerGateway, clock: Clock = utc_now) -> None:
        self._gateway = gateway
        self._clock = clock

    async def post(
        self,
        user_id: int,
        account: str,
        amount: int,
        kind: EntryKind,
        key: str,
        reference: Reference = Reference(),
    ) -> bool:
        """One movement; False if ``key`` was used before (nothing changes then)."""
        return await self._gateway.apply(
            LedgerEntry(
                user_id=user_id,
                account=account,
                amount=amount,
                kind=kind.value,
                idempotency_key=key,
                created_at=self._clock(),
                payment_id=reference.payment_id,
                job_id=reference.job_id,
                admin_id=reference.admin_id,
                note=reference.note,
            )
        )

    async def transfer(
        self,
        user_id: int,
        source: str,
        target: str,
        amount: int,
        kind: EntryKind,
        key: str,
        reference: Reference,
    ) -> bool:
        """Move ``amount`` between two of the user's accounts (two rows, one key family)."""
        if not await self.post(user_id, source, -amount, kind, f"{key}:out", reference):
            return False
        await self.post(user_id, target, amount, kind, f"{key}:in", reference)
        return True

    async def balances(self, user_id: int) -> dict[str, int]:
        return await self._gateway.balances(user_id)

    async def amount_of(self, key: str) -> int:
        """The amount of the entry with this idempotency key (0 if there is none)."""
        return await self._gateway.amount_of(key)

    async def total(self, user_id: int, kinds: tuple[EntryKind, ...]) -> int:
        return await self._gateway.total(user_id, tuple(kind.value for kind in kinds))

    async def captured_holds(
        self, user_id: int, limit: int, accounts: tuple[Account, ...]
    ) -> list[Hold]:
        return await self._gateway.captured_holds(
            user_id, limit, tuple(account.value for account in accounts)
        )

    async def open_holds_of_finished_jobs(self, limit: int) -> list[tuple[Hold, str, int]]:
        return await self._gateway.open_holds_of_finished_jobs(limit)

    # --- holds ---------------------------------------------------------------
    async def hold(self, job_id: int, user_id: int, funding: Funding, units: int) -> Hold:
        """Set the job's price aside (InsufficientFundsError if it is not there)."""
        existing = await self._gateway.get_hold(job_id)
        if existing is not None:
            return existing
        account = funding.account
        reference = Reference(job_id=job_id)
        if funding.amount:
            await self.transfer(
                user_id,
                account.value,
                account.held,
                funding.amount,
                EntryKind.HOLD,
                f"hold:{job_id}",
                reference,
            )
        hold = Hold(
            job_id=job_id,
            user_id=user_id,
            account=account.value,
            amount=funding.amount,
            units=units,
            created_at=self._clock(),
        )
        await self._gateway.add_hold(hold)
        return hold

    async def capture(self, job_id: int, delivered: int) -> Hold | None:
        """Charge for what was delivered; the rest of the hold goes back."""
        hold = await self._gateway.get_hold(job_id)
        if hold is None or hold.status != HoldStatus.OPEN.value:
            return hold
        taken = capture_amount(hold.amount, hold.units, min(delivered, hold.units))
        held = Account(hold.account).held
        reference = Reference(job_id=job_id)
        if taken:
            await self.post(
                hold.user_id, held, -taken, EntryKind.CAPTURE, f"capture:{job_id}", reference
            )
        if hold.amount - taken:
            await self.transfer(
                hold.user_id,
                held,
                hold.account,
                hold.amount - taken,
                EntryKind.RELEASE,
                f"release:{job_id}",
                reference,
            )
        hold.status, hold.captured, hold.settled_at = (
            HoldStatus.CAPTURED.value,
            taken,
            self._clock(),
        )
        return hold

    async def release(self, job_id: int) -> Hold | None:
        """Give the whole hold back (the job failed or was cancelled)."""
        hold = await self._gateway.get_hold(job_id)
        if hold is None or hold.status != HoldStatus.OPEN.value:
            return hold
        if hold.amount:
            await self.transfer(
                hold.user_id,
                Account(hold.account).held,
                hold.account,
                hold.amount,
                EntryKind.RELEASE,
                f"release:{job_id}",
                Reference(job_id=job_id),
            )
        hold.status, hold.settled_at = HoldStatus.RELEASED.value, self._clock()
        return hold

    async def discrepancies(self) -> list[str]:
        return await self._gateway.discrepancies()
