"""The ports services depend on.

The db adapter implements the gateways; the provider clients (``lumigram.providers``)
implement ``ImageProvider``; ``lumigram.imaging`` implements ``ImageProcessor``. The
composition roots (``lumigram.container``, ``lumigram.runtime``) inject them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lumigram.domain.audit import AuditEntry
from lumigram.domain.generation import Capabilities, GenerationRequest, ResultRef, TaskStatus
from lumigram.domain.jobs import Job, JobEvent
from lumigram.domain.media import ImageInfo, VideoInfo
from lumigram.domain.money import Hold, LedgerEntry, Payment, RefundRequest
from lumigram.domain.stars import StarTransaction
from lumigram.domain.subscriptions import Subscription, Tier
from lumigram.domain.templates import Template
from lumigram.domain.users import User

if TYPE_CHECKING:
    from lumigram.services.payments import Recorded


class DuplicateError(Exception):
    """A row with the same unique key already exists (e.g. a concurrent registration)."""


class TransactionManager(Protocol):
    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UserGateway(Protocol):
    async def get(self, user_id: int) -> User | None: ...

    async def get_by_referral_code(self, code: str) -> User | None: ...

    async def add(self, user: User) -> None:
        """Insert; raises DuplicateError if the id or referral code is taken."""
        ...

    async def count_referred(self, referrer_id: int) -> int: ...


class AuditGateway(Protocol):
    async def add(self, entry: AuditEntry) -> None: ...


class JobGateway(Protocol):
    async def add(self, job: Job) -> None: ...

    async def get(self, job_id: int) -> Job | None: ...

    async def lock_user(self, user_id: int) -> None:
        """Serialise job creation per user (a row lock on PostgreSQL; SQLite's
        BEGIN IMMEDIATE already serialises writers)."""
        ...

    async def active_for_user(self, user_id: int) -> list[Job]: ...

    async def recent_for_user(self, user_id: int, limit: int) -> list[Job]: ...

    async def claim(
        self, job_id: int, *, now: datetime, lease_until: datetime, token: str
    ) -> Job | None:
        """Take the job's next step with one conditional update; None if it is not
        active, not due, or leased by someone else (a duplicate dispatch)."""
        ...

    async def by_idempotency_key(self, api_key_id: int, key: str) -> Job | None: ...

    async def save_leased(self, job: Job, token: str) -> bool:
        """Write the job's step fields if ``token`` still holds its lease."""
        ...

    async def update_leased(self, job_id: int, token: str, values: dict[str, Any]) -> bool:
        """Write ``values`` only if we still hold the lease; False if we lost it."""
        ...

    async def renew_lease(self, job_id: int, token: str, until: datetime) -> bool: ...

    async def release_lease(self, job_id: int, token: str) -> bool: ...

    async def cancel_active(self, job_id: int, *, user_id: int | None, now: datetime) -> Job | None:
        """Mark an active job cancelled (conditional update); the job, or None if not active."""
        ...

    async def cancel_awaiting_payment(
        self, user_id: int, *, now: datetime, before: datetime | None = None
    ) -> int:
        """Cancel unpaid jobs of the user (0: of everyone), optionally only older ones."""
        ...

    async def start_paid(self, job_id: int, *, now: datetime) -> Job | None:
        """Queue an awaiting-payment job (conditional update); None if it was not awaiting."""
        ...

    async def due(self, now: datetime, limit: int) -> list[int]:
        """Active jobs whose next step is due and whose lease is free or expired."""
        ...

    async def release_all_leases(self) -> int:
        """Forget every lease (embedded mode at start-up: no other worker can hold one)."""
        ...

    async def queue_position(self, job: Job) -> int:
        """1-based place among queued jobs (higher priority first, then oldest)."""
        ...


class TemplateGateway(Protocol):
    async def list_active(self) -> list[Template]: ...

    async def get(self, template_id: int) -> Template | None: ...

    async def get_by_slug(self, slug: str) -> Template | None: ...

    async def refresh_usage_counts(self) -> None: ...


class FileStorage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def public_url(self, key: str, expires_in: int) -> str | None:
        """A URL anybody holding it can download the file from, without credentials, for
        ``expires_in`` seconds (an API client, a provider fetching an input image); None
        when the store has none (a local folder: the file is served by the API)."""
        ...


class ProviderSlots(Protocol):
    """How many calls a provider takes at once (and how fast): in-process by default, or
    shared by every worker process (Redis) in scale-out."""

    def hold(self, provider: str) -> AbstractAsyncContextManager[None]:
        """A slot for one call to ``provider``, waited for, released at block exit."""
        ...


class JobDispatcher(Protocol):
    """Hands a job id to a worker; messages carry only the id (the jobs table is the truth)."""

    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class Price:
    """What one job costs, in each currency it may be paid in."""

    outputs: int  # images: what the trial and the subscription allowance count
    credits: int
    stars: int  # when bought by invoice
    use_allowance: bool = True  # False once the subscription has ended
    use_trial: bool = True  # False for videos: free images and allowances are images


class Billing(Protocol):
    """The money seam of the job lifecycle. Each call runs inside the job's transaction."""

    async def reserve(self, job: Job, price: Price) -> bool:
        """Hold the price when the job is queued; False: nothing to pay with (invoice)."""
        ...

    async def capture(self, job: Job, delivered_outputs: int) -> None:
        """Charge for what was delivered (only the outputs that succeeded)."""
        ...

    async def release(self, job: Job) -> None:
        """Give the hold back: the job failed or was cancelled (an invoice is refunded)."""
        ...


class JobEvents(Protocol):
    """Where a job's events go: one adapter per channel (Telegram, API, admin) behind a
    router, plus observers such as the metrics. Publishing never fails the job: a
    channel that cannot deliver logs it and keeps what it needs to try again."""

    async def publish(self, event: JobEvent) -> None: ...


class UnitOfWork(Protocol):
    """One transaction over every gateway a use case needs."""

    @property
    def users(self) -> UserGateway: ...

    @property
    def jobs(self) -> JobGateway: ...

    @property
    def templates(self) -> TemplateGateway: ...

    @property
    def billing(self) -> Billing: ...

    @property
    def ledger(self) -> LedgerGateway: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class LedgerGateway(Protocol):
    """Ledger rows and balances. ``apply`` is the only way a balance changes."""

    async def apply(self, entry: LedgerEntry) -> bool:
        """Record ``entry`` and move its balance, atomically.

        False (and nothing changed) if an entry with the same idempotency key
        exists; InsufficientFundsError (nothing changed) if the balance would go
        below zero."""
        ...

    async def balances(self, user_id: int) -> dict[str, int]: ...

    async def get_hold(self, job_id: int) -> Hold | None: ...

    async def add_hold(self, hold: Hold) -> bool:
        """False if the job already has a hold."""
        ...

    async def total(self, user_id: int, kinds: tuple[str, ...]) -> int: ...

    async def amount_of(self, key: str) -> int: ...

    async def open_holds_of_finished_jobs(self, limit: int) -> list[tuple[Hold, str, int]]:
        """Open holds whose job ended: (hold, job status, outputs delivered)."""
        ...

    async def captured_holds(
        self, user_id: int, limit: int, accounts: tuple[str, ...]
    ) -> list[Hold]:
        """The user's most recent jobs that cost something, paid from one of ``accounts``."""
        ...

    async def discrepancies(self) -> list[str]:
        """Balances that differ from their ledger, negative balances, broken holds."""
        ...


class PaymentGateway(Protocol):
    async def get_by_charge(self, charge_id: str) -> Payment | None: ...

    async def add(self, payment: Payment) -> bool:
        """Insert; False if the charge id is recorded already (a replayed update)."""
        ...

    async def count_paid(self, user_id: int) -> int: ...

    async def get(self, payment_id: int) -> Payment | None: ...

    async def for_job(self, job_id: int) -> Payment | None: ...

    async def recent_for_user(self, user_id: int, limit: int) -> list[Payment]: ...

    async def refunds_due(self, now: datetime, limit: int) -> list[Payment]: ...

    async def add_refund_request(self, request: RefundRequest) -> None: ...

    async def open_refund_request(self, user_id: int, job_id: int) -> RefundRequest | None: ...

    async def with_payload(self, user_id: int, payload: str) -> Payment | None:
        """The user's earliest payment of this invoice payload (a subscription's first)."""
        ...


class StarsSyncGateway(Protocol):
    """The reconciliation's cursor and the Star transactions nothing matched."""

    async def get_state(self, key: str) -> str | None: ...

    async def set_state(self, key: str, value: str, now: datetime) -> None: ...

    async def add_issue(self, transaction: StarTransaction, problem: str, now: datetime) -> bool:
        """Keep it for the operator; False if it was kept before."""
        ...


class SubscriptionGateway(Protocol):
    async def get(self, user_id: int, *, lock: bool = False) -> Subscription | None: ...

    async def add(self, subscription: Subscription) -> None: ...

    async def needing_attention(self, now: datetime, limit: int) -> list[Subscription]: ...

    async def used_up_without_notice(self, now: datetime, limit: int) -> list[Subscription]: ...


class StarsRefusedError(Exception):
    """Telegram refused a Stars call; ``reason`` is its description."""

    def __init__(self, reason: str, *, already_done: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.already_done = already_done  # e.g. CHARGE_ALREADY_REFUNDED


class StarsGateway(Protocol):
    """Telegram's Stars payment calls (the bot adapter implements them)."""

    async def refund(self, user_id: int, charge_id: str) -> None:
        """refundStarPayment; StarsRefusedError if Telegram says no."""
        ...

    async def set_subscription_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None:
        """editUserStarSubscription; StarsRefusedError if Telegram says no."""
        ...

    async def subscription_link(self, tier: Tier, payload: str, language: str) -> str:
        """createInvoiceLink with subscription_period 2592000."""
        ...

    async def transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """getStarTransactions: the bot's transactions in chronological order."""
        ...


class MoneyNotifier(Protocol):
    """Messages about money the user did not just ask for (the bot adapter sends them)."""

    async def refunded(self, user_id: int, stars: int, job_id: int | None) -> None: ...

    async def payment_received(self, recorded: Recorded) -> None:
        """A payment whose update never arrived was recorded by the reconciliation."""
        ...

    async def subscription_expiring(
        self, subscription: Subscription, tier: Tier | None
    ) -> None: ...

    async def subscription_ended(self, subscription: Subscription, tier: Tier | None) -> None: ...

    async def allowance_used_up(self, subscription: Subscription, tier: Tier | None) -> None: ...


@runtime_checkable
class ImageProvider(Protocol):
    """Implemented by every provider client (replicate, openai, gemini, huggingface, demo)."""

    name: str

    def capabilities(self, model: str) -> Capabilities:
        """Capabilities of one of this provider's models; KeyError for an unknown model."""
        ...

    def models(self) -> Mapping[str, Capabilities]:
        """Every model this client knows, by provider model name."""
        ...

    async def submit(self, request: GenerationRequest) -> TaskStatus:
        """Start a generation. Raises ProviderError on a classified failure."""
        ...

    async def poll(self, provider_job_id: str) -> TaskStatus:
        """Current state of an asynchronous generation."""
        ...

    async def fetch(self, ref: ResultRef) -> bytes:
        """The bytes of one output, size-capped and checked to be an image or video."""
        ...

    async def cancel(self, provider_job_id: str) -> None:
        """Best-effort cancel; never raises for an already finished job."""
        ...

    async def aclose(self) -> None: ...


class ImageProcessor(Protocol):
    """Image decoding and post-processing (``lumigram.imaging.PillowImages``).

    Both methods are synchronous and CPU-bound: call them through
    ``asyncio.to_thread``. Both raise ``InvalidImage`` for bytes that are not a
    sound JPEG/PNG/WebP within the pixel limit.
    """

    def probe(self, data: bytes) -> ImageInfo:
        """Format, MIME type and size, after fully decoding the image to prove it sound."""
        ...

    def to_coloring_page(self, data: bytes) -> bytes:
        """The image as a printable A4 colouring page (black lines on white)."""
        ...


class VideoProcessor(Protocol):
    """Video probing (``lumigram.video.PyAVVideos``): synchronous and CPU-bound, call it
    through ``asyncio.to_thread``. Raises ``InvalidVideo`` for bytes that are not a
    video with a readable video stream."""

    def probe(self, data: bytes) -> VideoInfo:
        """Container, MIME type, width, height and duration."""
        ...

    def first_frame(self, data: bytes, max_side: int = 320) -> bytes:
        """The first frame as a JPEG no larger than ``max_side`` (a video's thumbnail)."""
        ...
