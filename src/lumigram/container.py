"""Wiring: the process-wide parts, and the services for one unit of work.

The bot, the HTTP API and the workers all get their use cases from here, so
each adapter stays a thin translation layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.catalog import Catalog
from lumigram.config import Settings
from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.payments import PaymentRepository
from lumigram.db.repositories.stars_sync import StarsSyncRepository
from lumigram.db.repositories.subscriptions import SubscriptionRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.db.uow import SqlUnitOfWork
from lumigram.domain.invoices import derive_secret
from lumigram.domain.jobs import RetryRules
from lumigram.imaging import PillowImages
from lumigram.services.account import AccountService
from lumigram.services.api_keys import ApiKeyService
from lumigram.services.billing import LedgerBilling
from lumigram.services.file_links import FileLinks, derive_link_secret
from lumigram.services.generation import GenerationPolicy, GenerationService
from lumigram.services.ledger import Ledger
from lumigram.services.payment_intake import PaymentIntake
from lumigram.services.payments import PaymentService, ReferralPolicy
from lumigram.services.ports import (
    Billing,
    FileStorage,
    ImageProcessor,
    ImageProvider,
    JobDispatcher,
    JobEvents,
    MoneyNotifier,
    StarsGateway,
    VideoProcessor,
)
from lumigram.services.reconciler import MoneyReconciler
from lumigram.services.refunds import RefundService
from lumigram.services.stars_sync import StarsReconciliation
from lumigram.services.subscriptions import SubscriptionService
from lumigram.services.users import UserPolicy, UserService
from lumigram.services.worker import WorkerPolicy
from lumigram.video import PyAVVideos

log = logging.getLogger(__name__)


def user_policy(settings: Settings) -> UserPolicy:
    return UserPolicy(
        default_language=settings.default_language,
        admin_ids=settings.admin_ids,
        last_seen_resolution=timedelta(seconds=settings.last_seen_resolution),
        trial_images=settings.free_trial_images,
    )


def generation_policy(settings: Settings) -> GenerationPolicy:
    return GenerationPolicy(
        max_prompt_length=settings.max_prompt_length,
        max_active_jobs=settings.max_active_jobs,
        packages=settings.packages(),
        custom_surcharge=settings.custom_prompt_surcharge,
    )


def worker_policy(settings: Settings) -> WorkerPolicy:
    return WorkerPolicy(
        # Short, and renewed while a step runs: a dead worker's jobs are taken over soon.
        lease=timedelta(seconds=settings.lease_seconds),
        provider_concurrency=settings.provider_concurrency,
        rules=RetryRules(
            max_attempts=settings.job_max_attempts,
            base_backoff=settings.job_retry_delay,
            deadline=timedelta(seconds=settings.job_deadline),
        ),
    )


def billing_for(session: AsyncSession) -> Billing:
    """Jobs are paid through the ledger, in the job's own transaction."""
    return LedgerBilling(Ledger(LedgerRepository(session)), PaymentRepository(session))


@dataclass
class Infrastructure:
    """Long-lived, process-wide parts shared by every unit of work."""

    settings: Settings
    catalog: Catalog
    providers: dict[str, ImageProvider]
    storage: FileStorage
    dispatcher: JobDispatcher
    images: ImageProcessor = field(default_factory=PillowImages)  # Pillow, behind a port
    videos: VideoProcessor = field(default_factory=PyAVVideos)  # PyAV, behind a port
    # A job's events to its channel (Telegram, API callbacks) and the observers (metrics).
    events: JobEvents | None = None
    stars: StarsGateway | None = None  # Telegram's Stars calls, once the bot exists
    money_notifier: MoneyNotifier | None = None
    # Sends the refunds that are due now (the process serialises money work behind it).
    send_refunds: Callable[[], Awaitable[None]] | None = None

    @cached_property
    def invoice_secret(self) -> bytes:
        return derive_secret(self.settings.bot_token.get_secret_value())

    @cached_property
    def file_links(self) -> FileLinks:
        """Download links for results too big for Telegram (``GET /files/{key}``)."""
        secret = derive_link_secret(self.settings.bot_token.get_secret_value())
        return FileLinks(self.storage, secret, self.settings.public_base_url or None)


class Services:
    """The use cases over one database session. Created per update or request."""

    def __init__(self, session: AsyncSession, infra: Infrastructure) -> None:
        self.session = session
        self.infra = infra
        # What the use cases scheduled for after their transaction, run by the entry
        # point's scope once it is done (a new job is handed to a worker only after the
        # bot has shown its status message, so progress never races with it).
        self.followups: list[Callable[[], Awaitable[None]]] = []

    def schedule(self, followup: Callable[[], Awaitable[None]]) -> None:
        self.followups.append(followup)

    async def run_followups(self) -> None:
        """Run what was scheduled, in order. A failure is logged: each follow-up is also
        done by a sweeper (a job not dispatched is found by the job sweeper)."""
        while self.followups:
            followup = self.followups.pop(0)
            try:
                await followup()
            except Exception:
                log.exception("a follow-up of the request failed; the sweeper will do it")

    @cached_property
    def users(self) -> UserService:
        return UserService(
            UserRepository(self.session),
            AuditRepository(self.session),
            self.session,
            user_policy(self.infra.settings),
            ledger=self.ledger,
        )

    @cached_property
    def api_keys(self) -> ApiKeyService:
        return ApiKeyService(ApiKeyRepository(self.session), self.session)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(LedgerRepository(self.session))

    @cached_property
    def subscriptions(self) -> SubscriptionService:
        settings = self.infra.settings
        return SubscriptionService(
            SubscriptionRepository(self.session),
            self.ledger,
            self.session,
            tiers=settings.tiers(),
            free_perks=settings.free_perks(),
        )

    @cached_property
    def payments(self) -> PaymentService:
        settings = self.infra.settings
        return PaymentService(
            PaymentRepository(self.session),
            UserRepository(self.session),
            JobRepository(self.session),
            self.ledger,
            self.subscriptions,
            self.session,
            secret=self.infra.invoice_secret,
            packages=settings.packages(),
            referral=ReferralPolicy(settings.referral_percent, settings.referral_every_payment),
        )

    @cached_property
    def payment_intake(self) -> PaymentIntake:
        return PaymentIntake(self.payments, self.generation, self.infra.send_refunds)

    @cached_property
    def stars_sync(self) -> StarsReconciliation:
        return StarsReconciliation(
            StarsSyncRepository(self.session),
            PaymentRepository(self.session),
            # Refunds it causes are sent by its caller, which holds the money lock already.
            PaymentIntake(self.payments, self.generation, None),
            self.refunds,
            self.users,
            self.session,
        )

    @cached_property
    def refunds(self) -> RefundService:
        return RefundService(
            PaymentRepository(self.session),
            UserRepository(self.session),
            JobRepository(self.session),
            self.ledger,
            self.session,
        )

    @cached_property
    def account(self) -> AccountService:
        return AccountService(
            self.ledger,
            UserRepository(self.session),
            PaymentRepository(self.session),
            self.subscriptions,
            self.session,
        )

    @cached_property
    def reconciler(self) -> MoneyReconciler:
        return MoneyReconciler(
            self.ledger, JobRepository(self.session), billing_for(self.session), self.session
        )

    @cached_property
    def generation(self) -> GenerationService:
        return GenerationService(
            SqlUnitOfWork(self.session, billing_for(self.session)),
            self.infra.catalog,
            self.infra.providers,
            self.infra.storage,
            self.infra.dispatcher,
            generation_policy(self.infra.settings),
            subscriptions=self.subscriptions,
            images=self.infra.images,
            events=self.infra.events,
            schedule=self.schedule,
        )
