"""Builds the services for one unit of work (one database session).

The bot, the HTTP API and the workers all get their use cases from here, so
each adapter stays a thin translation layer.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from lumigram.config import Settings
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.services.users import UserPolicy, UserService


def user_policy(settings: Settings) -> UserPolicy:
    return UserPolicy(
        default_language=settings.default_language,
        admin_ids=settings.admin_ids,
        last_seen_resolution=timedelta(seconds=settings.last_seen_resolution),
    )


class Services:
    """The use cases, wired to repositories over ``session``. Created per update or request."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    @cached_property
    def users(self) -> UserService:
        return UserService(
            UserRepository(self.session),
            AuditRepository(self.session),
            self.session,
            user_policy(self.settings),
        )
