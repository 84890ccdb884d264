"""Bot-level methods: getMe, updates and webhooks, commands, profile texts."""

from __future__ import annotations

import re
from typing import Any

from . import limits
from .calls import Answer, Call, Handler, existing_chat
from .errors import WEBHOOK_CONFLICT, bad_request, conflict
from .state import copy_json, scope_key
from .updates import WebhookConfig

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]+$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")


async def get_me(call: Call) -> Any:
    return call.bot.get_me()


async def log_out(call: Call) -> Any:
    return True


async def get_updates(call: Call) -> Any:
    bot = call.bot
    if bot.webhook is not None:
        raise conflict(WEBHOOK_CONFLICT)
    # Out-of-range limits are clamped, as Telegram does.
    limit = min(max(int(call.get("limit", limits.UPDATES_LIMIT_MAX)), 1), limits.UPDATES_LIMIT_MAX)
    timeout = max(int(call.get("timeout", 0)), 0)
    bot.updates.set_allowed(call.get("allowed_updates"))
    updates = await bot.updates.get_updates(call.get("offset"), limit, float(timeout))
    return [copy_json(u) for u in updates]


async def set_webhook(call: Call) -> Any:
    bot = call.bot
    url = call.get("url", "")
    if not url:
        return await delete_webhook(call)
    # Telegram insists on HTTPS; the emulator also accepts plain HTTP so that tests can
    # receive updates on 127.0.0.1 without certificates.
    if not re.match(r"^https?://[^\s/]+", url, re.I):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = call.get("secret_token")
    if secret is not None and (
        len(secret) > limits.SECRET_TOKEN_MAX or not _SECRET_RE.match(secret)
    ):
        raise bad_request("secret token contains unallowed characters")
    max_connections = call.get("max_connections", 40)
    if not 1 <= max_connections <= limits.WEBHOOK_MAX_CONNECTIONS:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    if call.get("drop_pending_updates"):
        bot.updates.drop_pending()
    bot.updates.set_allowed(call.get("allowed_updates"))
    unchanged = bot.webhook is not None and bot.webhook.url == url
    call.runtime.stop_webhook(bot)
    bot.webhook = WebhookConfig(
        url=url,
        secret_token=secret,
        max_connections=max_connections,
        ip_address=call.get("ip_address") or "127.0.0.1",
    )
    call.runtime.start_webhook(bot)
    return Answer(True, "Webhook is already set" if unchanged else "Webhook was set")


async def delete_webhook(call: Call) -> Any:
    bot = call.bot
    if call.get("drop_pending_updates"):
        bot.updates.drop_pending()
    if bot.webhook is None:
        return Answer(True, "Webhook is already deleted")
    call.runtime.stop_webhook(bot)
    bot.webhook = None
    return Answer(True, "Webhook was deleted")


async def get_webhook_info(call: Call) -> Any:
    bot = call.bot
    pending = len(bot.updates.pending)
    if bot.webhook is None:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": pending,
        }
        if bot.updates.allowed_updates:
            info["allowed_updates"] = list(bot.updates.allowed_updates)
        return info
    return bot.webhook.info(pending, bot.updates.allowed_updates)


def _commands_key(call: Call) -> tuple[str, str]:
    language = call.get("language_code", "")
    if language and not _LANGUAGE_RE.match(language):
        raise bad_request("invalid language code specified")
    return scope_key(call.get("scope")), language


async def set_my_commands(call: Call) -> Any:
    commands = call.params["commands"]
    if len(commands) > limits.COMMANDS_MAX:
        raise bad_request("too many commands specified")
    for command in commands:
        name = command["command"]
        if not 1 <= len(name) <= limits.COMMAND_MAX or not _COMMAND_RE.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command["description"]) <= limits.COMMAND_DESCRIPTION_MAX:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    key = _commands_key(call)
    if commands:
        call.bot.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
    else:
        call.bot.commands.pop(key, None)
    return True


async def get_my_commands(call: Call) -> Any:
    return [dict(c) for c in call.bot.commands.get(_commands_key(call), [])]


async def delete_my_commands(call: Call) -> Any:
    call.bot.commands.pop(_commands_key(call), None)
    return True


def _profile_setter(field: str, max_length: int) -> Handler:
    async def handler(call: Call) -> Any:
        value = call.get(field, "")
        if len(value) > max_length:
            raise bad_request(f"{field} is too long")
        call.bot.profile[(field, call.get("language_code", ""))] = value
        return True

    return handler


def _profile_getter(field: str) -> Handler:
    async def handler(call: Call) -> Any:
        value = call.bot.profile.get((field, call.get("language_code", "")))
        if value is None and field == "name":
            value = call.bot.first_name
        return {field: value or ""}

    return handler


async def set_chat_menu_button(call: Call) -> Any:
    call.bot.profile[("menu_button", call.get("chat_id"))] = call.get(
        "menu_button", {"type": "default"}
    )
    return True


async def get_chat_menu_button(call: Call) -> Any:
    return call.bot.profile.get(("menu_button", call.get("chat_id")), {"type": "commands"})


async def get_chat(call: Call) -> Any:
    chat = existing_chat(call)
    full = chat.to_chat()
    full.update(
        accent_color_id=0,
        max_reaction_count=11,
        accepted_gift_types={
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    )
    return full


HANDLERS: dict[str, Handler] = {
    "getMe": get_me,
    "logOut": log_out,
    "close": log_out,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setMyName": _profile_setter("name", 64),
    "getMyName": _profile_getter("name"),
    "setMyDescription": _profile_setter("description", 512),
    "getMyDescription": _profile_getter("description"),
    "setMyShortDescription": _profile_setter("short_description", 120),
    "getMyShortDescription": _profile_getter("short_description"),
    "setChatMenuButton": set_chat_menu_button,
    "getChatMenuButton": get_chat_menu_button,
    "getChat": get_chat,
}
