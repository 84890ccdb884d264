"""Wiring: the process-wide parts, and the services for one unit of work.

The bot, the HTTP API and the workers all get their use cases from here, so
each adapter stays a thin translation layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.catalog import Catalog
from lumigram.config import Settings
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.db.uow import SqlUnitOfWork
from lumigram.domain.jobs import RetryRules
from lumigram.providers.base import ImageProvider
from lumigram.services.billing import FreeBilling
from lumigram.services.generation import GenerationPolicy, GenerationService
from lumigram.services.ports import Billing, FileStorage, JobDispatcher
from lumigram.services.users import UserPolicy, UserService
from lumigram.services.worker import WorkerPolicy


def user_policy(settings: Settings) -> UserPolicy:
    return UserPolicy(
        default_language=settings.default_language,
        admin_ids=settings.admin_ids,
        last_seen_resolution=timedelta(seconds=settings.last_seen_resolution),
    )


def generation_policy(settings: Settings) -> GenerationPolicy:
    return GenerationPolicy(
        max_prompt_length=settings.max_prompt_length, max_active_jobs=settings.max_active_jobs
    )


def worker_policy(settings: Settings) -> WorkerPolicy:
    return WorkerPolicy(
        # Longer than the slowest step can take (a request retried with back-off), so a
        # live worker never loses its lease to the sweeper in the middle of a call.
        lease=timedelta(seconds=settings.provider_timeout * 5 + 60),
        provider_concurrency=settings.provider_concurrency,
        rules=RetryRules(
            max_attempts=settings.job_max_attempts,
            base_backoff=settings.job_retry_delay,
            deadline=timedelta(seconds=settings.job_deadline),
        ),
    )


def billing_for(session: AsyncSession) -> Billing:
    """The billing seam: free until the money feature takes it over."""
    return FreeBilling()


@dataclass
class Infrastructure:
    """Long-lived, process-wide parts shared by every unit of work."""

    settings: Settings
    catalog: Catalog
    providers: dict[str, ImageProvider]
    storage: FileStorage
    dispatcher: JobDispatcher


class Services:
    """The use cases over one database session. Created per update or request."""

    def __init__(self, session: AsyncSession, infra: Infrastructure) -> None:
        self.session = session
        self.infra = infra

    @cached_property
    def users(self) -> UserService:
        return UserService(
            UserRepository(self.session),
            AuditRepository(self.session),
            self.session,
            user_policy(self.infra.settings),
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
        )
