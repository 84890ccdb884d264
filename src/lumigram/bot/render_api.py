"""Texts of /api: what the API is, the user's keys, a new key shown once, revoking."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram.utils.i18n import gettext as _

from lumigram.domain.api_keys import MAX_KEYS_PER_USER, ApiKey
from lumigram.services.api_keys import CreatedKey


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def shown_prefix(key: ApiKey) -> str:
    """How a key is told apart in lists and buttons: its first characters and "…"."""
    return f"{key.prefix}…"


def key_line(key: ApiKey) -> str:
    used = (
        _("last used {when}").format(when=moment(key.last_used_at))
        if key.last_used_at is not None
        else _("not used yet")
    )
    return _("• <code>{prefix}</code> — {name}\n    created {date}, {used}").format(
        prefix=escape(shown_prefix(key)), name=escape(key.name), date=day(key.created_at), used=used
    )


def overview(keys: list[ApiKey], docs_url: str | None) -> str:
    lines = [
        _("🔑 <b>API keys</b>"),
        "",
        _(
            "With an API key your own programs and scripts can create images through "
            "Lumigram's HTTP API. Images made with a key are paid from your balance, "
            "like the ones you make here."
        ),
    ]
    if docs_url:
        lines.append(_("Documentation: {url}").format(url=escape(docs_url)))
    lines.append("")
    if keys:
        lines.append(
            _("<b>Your keys</b>: {count} of {limit}").format(
                count=len(keys), limit=MAX_KEYS_PER_USER
            )
        )
        lines += [key_line(key) for key in keys]
    else:
        lines.append(_("You have no API keys yet. Create one to get started."))
    return "\n".join(lines)


def created(created: CreatedKey) -> str:
    return _(
        "✅ <b>New API key: {name}</b>\n\n"
        "Key:\n<code>{api_key}</code>\n\n"
        "Signing secret (it signs the results sent to your callback URL):\n"
        "<code>{secret}</code>\n\n"
        "⚠️ Copy both now: they will not be shown again. Keep them secret: anyone with "
        "the key can spend your balance. You can delete this message once they are "
        "stored safely.\n\n"
        "Send the key with each request as "
        "<code>Authorization: Bearer &lt;key&gt;</code>."
    ).format(
        name=escape(created.key.name),
        api_key=escape(created.plaintext),
        secret=escape(created.signing_secret),
    )


def too_many(limit: int) -> str:
    """Shown in an alert (at most 200 characters)."""
    return _(
        "You already have {limit} key, the most allowed. Revoke one to create another.",
        "You already have {limit} keys, the most allowed. Revoke one to create another.",
        limit,
    ).format(limit=limit)


def confirm_revoke(key: ApiKey) -> str:
    return _(
        "Revoke the key <code>{prefix}</code> — {name}?\n\n"
        "Programs that use it stop working at once. This cannot be undone."
    ).format(prefix=escape(shown_prefix(key)), name=escape(key.name))


def revoked() -> str:
    return _("The key is revoked.")


def key_gone() -> str:
    return _("This key does not exist any more.")


def private_only() -> str:
    return _("API keys are managed in a private chat with me, so that no one else sees them.")


# --- buttons ---------------------------------------------------------------------------


def create_button() -> str:
    return _("➕ Create a key")


def revoke_button(key: ApiKey) -> str:
    return _("🗑 Revoke {prefix}").format(prefix=shown_prefix(key))


def confirm_revoke_button() -> str:
    return _("🗑 Yes, revoke it")
