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
    # Stars paid by invoice for one generation and not yet spent or refunded. A paid
    # job that delivers only some of its images leaves the rest here, and it pays for
    # the user's next pay-per-image generation (Telegram refunds whole payments only).
    STARS = "stars"

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
    *,
    outputs: int,
    credit_price: int,
    trial: int,
    allowance: int,
    credit_balance: int,
    star_price: int = 0,
    stars: int = 0,
) -> Funding | None:
    """Free images first, then the subscription allowance, then credits, then Stars
    left over from an earlier paid generation; None: pay by invoice.

    Trial and allowance are counted in images (one per output); credits and Stars by price.
    """
    if outputs <= 0 or credit_price < 0 or star_price < 0:
        raise ValueError("outputs must be positive and the price not negative")
    if trial >= outputs:
        return Funding(Account.TRIAL, outputs)
    if allowance >= outputs:
        return Funding(Account.ALLOWANCE, outputs)
    if credit_balance >= credit_price:
        return Funding(Account.CREDITS, credit_price)
    if star_price and stars >= star_price:
        return Funding(Account.STARS, star_price)
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


@dataclass(frozen=True, slots=True)
class Package:
    """Credits sold for Telegram Stars."""

    id: str
    credits: int
    stars: int


def parse_packages(spec: str) -> tuple[Package, ...]:
    """``"10:100,50:450"`` (credits:stars, comma-separated) into packages, cheapest first.

    Raises ValueError with a message fit for the operator.
    """
    packages: list[Package] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        credits_text, _, stars_text = item.partition(":")
        if not (credits_text.isdigit() and stars_text.isdigit()):
            raise ValueError(f"{item!r} is not credits:stars, e.g. 10:100")
        credits_count, stars = int(credits_text), int(stars_text)
        if not 1 <= credits_count <= 1_000_000 or not 1 <= stars <= 100_000:
            raise ValueError(f"{item!r}: credits 1-1000000 and stars 1-100000")
        packages.append(Package(f"c{credits_count}", credits_count, stars))
    if len({p.id for p in packages}) != len(packages):
        raise ValueError("two packages with the same number of credits")
    return tuple(sorted(packages, key=lambda p: p.stars))


class PaymentStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


class RefundState(StrEnum):
    """Where an automatic Stars refund stands (``refundStarPayment``)."""

    PENDING = "pending"  # to be sent (again) at refund_next_at
    DONE = "done"
    FAILED = "failed"  # Telegram kept refusing: the operator must look (kept, never dropped)


UNMATCHED = "unmatched"  # a payment whose payload we could not match: kept for the operator


@dataclass(eq=False)
class Payment:
    """One Telegram Stars payment, recorded once per ``telegram_payment_charge_id``."""

    telegram_payment_charge_id: str
    user_id: int
    invoice_payload: str
    product: str
    amount_xtr: int
    created_at: datetime
    product_ref: str | None = None
    credits: int = 0  # credit value of what it bought (the base of a referral bonus)
    status: str = PaymentStatus.PAID.value
    subscription_expires_at: datetime | None = None
    is_recurring: bool = False
    is_first_recurring: bool = False
    refunded_at: datetime | None = None
    refund_state: str | None = None
    refund_attempts: int = 0
    refund_next_at: datetime | None = None
    refund_error: str | None = None
    id: int | None = None


class RefundRequestStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(eq=False)
class RefundRequest:
    """A user's request to refund a paid generation; the operator decides."""

    user_id: int
    job_id: int
    reason: str
    created_at: datetime
    payment_id: int | None = None
    status: str = RefundRequestStatus.OPEN.value
    decided_at: datetime | None = None
    id: int | None = None


def refund_backoff(attempt: int) -> float:
    """Seconds before retrying a refused refund: 1 min, 5, 25, … capped at 6 h."""
    return float(min(60 * 5 ** max(attempt - 1, 0), 6 * 3600))


MAX_REFUND_ATTEMPTS = 8
