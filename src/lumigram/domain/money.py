"""Money rules: accounts, ledger entries, holds and how a generation is paid for.

Every balance change is an append-only ledger entry with a unique idempotency
key; the balance kept per (user, account) always equals the sum of that
account's entries and is never negative. A job's price is first *held*
(moved from an account to its ``:held`` twin), then *captured* (taken from the
held account) on success or *released* (moved back) on failure, so an
interrupted job never loses or double-counts anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

HELD_SUFFIX = ":held"


class Account(StrEnum):
    CREDITS = "credits"  # bought in packages, referral bonuses, admin adjustments
    TRIAL = "trial"  # free images for new users
    ALLOWANCE = "allowance"  # images included in the subscription period

    @property
    def held(self) -> str:
        return f"{self.value}{HELD_SUFFIX}"


ALL_ACCOUNTS: tuple[str, ...] = tuple(
    name for account in Account for name in (account.value, account.held)
)


class EntryKind(StrEnum):
    TRIAL_GRANT = "trial_grant"
    TOP_UP = "top_up"
    SINGLE_PURCHASE = "single_purchase"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND = "refund"
    REFERRAL_BONUS = "referral_bonus"
    REFERRAL_REVERSAL = "referral_reversal"
    SUBSCRIPTION_GRANT = "subscription_grant"
    EXPIRY = "expiry"
    ADMIN_ADJUSTMENT = "admin_adjustment"


class HoldStatus(StrEnum):
    OPEN = "open"
    CAPTURED = "captured"
    RELEASED = "released"


@dataclass(eq=False)
class LedgerEntry:
    user_id: int
    account: str
    amount: int  # signed; never zero
    kind: str
    idempotency_key: str
    created_at: datetime
    payment_id: int | None = None
    job_id: int | None = None
    admin_id: int | None = None
    note: str | None = None
    id: int | None = None


@dataclass(eq=False)
class Hold:
    """The price of one job, set aside until the job succeeds or fails."""

    job_id: int
    user_id: int
    account: str
    amount: int
    units: int  # outputs paid for; a partial success captures only what was delivered
    created_at: datetime
    status: str = HoldStatus.OPEN.value
    captured: int = 0
    settled_at: datetime | None = None
    id: int | None = None


class InsufficientFundsError(Exception):
    def __init__(self, account: str, needed: int, available: int) -> None:
        super().__init__(f"{account}: needs {needed}, has {available}")
        self.account = account
        self.needed = needed
        self.available = available


@dataclass(frozen=True, slots=True)
class Funding:
    """Which account pays for a job, and how much of it."""

    account: Account
    amount: int


def choose_funding(
    *, outputs: int, credit_price: int, trial: int, allowance: int, credit_balance: int
) -> Funding | None:
    """Free images first, then the subscription allowance, then credits; None: pay by invoice.

    Trial and allowance are counted in images (one per output); credits by price.
    """
    if outputs <= 0 or credit_price < 0:
        raise ValueError("outputs must be positive and the price not negative")
    if trial >= outputs:
        return Funding(Account.TRIAL, outputs)
    if allowance >= outputs:
        return Funding(Account.ALLOWANCE, outputs)
    if credit_balance >= credit_price:
        return Funding(Account.CREDITS, credit_price)
    return None


def capture_amount(hold_amount: int, units: int, delivered: int) -> int:
    """What a partial success costs: the delivered share of the hold, rounded up.

    Rounding up keeps the operator whole on odd prices; delivering nothing costs nothing.
    """
    if units <= 0 or not 0 <= delivered <= units:
        raise ValueError("delivered must be between 0 and the units held")
    return -(-hold_amount * delivered // units)


def referral_bonus(credits_bought: int, percent: int) -> int:
    """The referrer's share of a purchase, in whole credits (rounded down)."""
    if credits_bought < 0 or not 0 <= percent <= 100:
        raise ValueError("bad purchase or percentage")
    return credits_bought * percent // 100
