"""Registering users as they write, their language, and bans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from lumigram.domain.audit import AuditEntry
from lumigram.domain.money import Account, EntryKind
from lumigram.domain.users import (
    SUPPORTED_LANGUAGES,
    Role,
    User,
    new_referral_code,
    parse_start_payload,
    pick_language,
)
from lumigram.services.clock import Clock, utc_now
from lumigram.services.ledger import Ledger
from lumigram.services.ports import AuditGateway, DuplicateError, TransactionManager, UserGateway
from lumigram.services.unit import use_case

MAX_PAYLOAD_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Contact:
    """Who wrote to the bot, as Telegram describes them."""

    user_id: int
    first_name: str
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    user: User
    created: bool  # first contact ever: this update created the user


@dataclass(frozen=True, slots=True)
class UserPolicy:
    default_language: str = "en"
    admin_ids: frozenset[int] = frozenset()
    last_seen_resolution: timedelta = timedelta(minutes=5)
    trial_images: int = 0  # free images granted at registration


class UnsupportedLanguageError(ValueError):
    pass


class UserService:
    def __init__(
        self,
        users: UserGateway,
        audit: AuditGateway,
        tx: TransactionManager,
        policy: UserPolicy,
        clock: Clock = utc_now,
        ledger: Ledger | None = None,
    ) -> None:
        self._ledger = ledger
        self._users = users
        self._audit = audit
        self._tx = tx
        self._policy = policy
        self._clock = clock

    @use_case
    async def get(self, user_id: int) -> User | None:
        """The user (for entry points that authenticate otherwise, e.g. an API key)."""
        return await self._users.get(user_id)

    async def register_contact(self, contact: Contact) -> Registration:
        """Create the user on first contact; otherwise refresh only what changed.

        Writes happen only when something changed or ``last_seen`` is older
        than the configured resolution, so most updates are a single read.
        """
        now = self._clock()
        user = await self._users.get(contact.user_id)
        if user is None:
            try:
                user = await self._create(contact)
            except DuplicateError:
                # A concurrent update registered the same user first: use theirs.
                await self._tx.rollback()
                user = await self._users.get(contact.user_id)
                if user is None:
                    raise
            else:
                await self._tx.commit()
                return Registration(user, created=True)
        changed = user.needs_refresh(
            username=contact.username,
            first_name=contact.first_name,
            now=now,
            resolution=self._policy.last_seen_resolution,
        )
        if changed:
            user.username = contact.username
            user.first_name = contact.first_name
            user.last_seen_at = now
        self._sync_admin_role(user)
        # Commit even when nothing changed: it ends the (SQLite: write-locked) transaction
        # without expiring the loaded user, which a rollback would do.
        await self._tx.commit()
        return Registration(user, created=False)

    async def _create(self, contact: Contact) -> User:
        now = self._clock()
        for _ in range(5):
            code = new_referral_code()
            if await self._users.get_by_referral_code(code) is None:
                break
        user = User(
            id=contact.user_id,
            first_name=contact.first_name[:256],
            username=contact.username,
            language=pick_language(contact.language_code, self._policy.default_language),
            referral_code=code,
            created_at=now,
            last_seen_at=now,
        )
        self._sync_admin_role(user)
        await self._users.add(user)
        if self._ledger is not None and self._policy.trial_images:
            # In the registration's transaction: a user never exists without their trial.
            await self._ledger.post(
                user.id,
                Account.TRIAL.value,
                self._policy.trial_images,
                EntryKind.TRIAL_GRANT,
                f"trial:{user.id}",
            )
        return user

    def _sync_admin_role(self, user: User) -> None:
        """ADMIN_IDS in the configuration make a user an admin."""
        if user.id in self._policy.admin_ids and user.role != Role.ADMIN.value:
            user.role = Role.ADMIN.value

    @use_case
    async def remember_start_payload(self, user: User, payload: str | None) -> None:
        """Keep the first ``/start`` payload of a new user and attach their referrer.

        The referrer is attached once, only at the first start, never to oneself.
        """
        if not payload or user.start_payload is not None:
            return
        user.start_payload = payload[:MAX_PAYLOAD_LENGTH]
        code = parse_start_payload(payload)
        if code is not None and user.referred_by_id is None:
            referrer = await self._users.get_by_referral_code(code)
            if referrer is not None and referrer.id != user.id:
                user.referred_by_id = referrer.id

    @use_case
    async def set_language(self, user: User, language: str) -> User:
        if language not in SUPPORTED_LANGUAGES:
            raise UnsupportedLanguageError(language)
        user.language = language
        return user

    @use_case
    async def set_ban(
        self, *, actor_id: int | None, user_id: int, banned: bool, reason: str | None = None
    ) -> User | None:
        """Ban or unban a user; the change is written to the audit log in the same transaction."""
        user = await self._users.get(user_id)
        if user is None:
            return None
        user.is_banned = banned
        user.ban_reason = reason if banned else None
        await self._audit.add(
            AuditEntry(
                actor_id=actor_id,
                action="user.ban" if banned else "user.unban",
                target_type="user",
                target_id=str(user_id),
                details={"reason": reason} if reason else {},
                created_at=self._clock(),
            )
        )
        return user
