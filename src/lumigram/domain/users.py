"""Rules about users: roles, languages and referral codes."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "ru", "uz")
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "ru": "Русский", "uz": "O'zbekcha"}

REFERRAL_ALPHABET = string.ascii_lowercase + string.digits
REFERRAL_CODE_LENGTH = 8
REFERRAL_PREFIX = "ref_"


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


def pick_language(telegram_code: str | None, default: str) -> str:
    """The language for a new user from Telegram's ``language_code`` (e.g. "ru", "uz-UZ")."""
    if telegram_code:
        primary = telegram_code.split("-")[0].split("_")[0].lower()
        if primary in SUPPORTED_LANGUAGES:
            return primary
    return default


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


def parse_start_payload(payload: str | None) -> str | None:
    """The referral code of a ``/start ref_<code>`` deep link, or None for anything else."""
    if not payload or not payload.startswith(REFERRAL_PREFIX):
        return None
    code = payload[len(REFERRAL_PREFIX) :]
    if len(code) != REFERRAL_CODE_LENGTH or any(ch not in REFERRAL_ALPHABET for ch in code):
        return None
    return code


@dataclass(eq=False)
class User:
    """A Telegram user of the bot. Mapped to the ``users`` table by the db adapter."""

    id: int
    language: str
    referral_code: str
    created_at: datetime
    last_seen_at: datetime
    first_name: str = ""
    username: str | None = None
    role: str = Role.USER.value
    is_banned: bool = False
    ban_reason: str | None = None
    referred_by_id: int | None = None
    start_payload: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def needs_refresh(
        self, *, username: str | None, first_name: str, now: datetime, resolution: timedelta
    ) -> bool:
        """Whether a new contact should be written back (avoids a write on every update)."""
        return (
            self.username != username
            or self.first_name != first_name
            or now - self.last_seen_at >= resolution
        )
