"""Keyboard rules the spec's tables cannot express (exactly one action per inline
button, callback_data size, URL schemes, ...), checked after type validation."""

from __future__ import annotations

import re
from typing import Any

from . import limits
from .errors import bad_request

JSON = dict[str, Any]

INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BUTTON = "can't parse inline keyboard button: "
_URL_RE = re.compile(r"^(https?)://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?$|^tg://\S+$", re.I)
_LOCAL_URL_RE = re.compile(r"^https?://(localhost|127\.0\.0\.1)(:\d+)?(/\S*)?$", re.I)


def _check_url(url: str, what: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*://", url, re.I) and not re.match(
        r"^(https?|tg)://", url, re.I
    ):
        raise bad_request(f"{what} URL '{url}' is invalid: Unsupported URL protocol")
    if not (_URL_RE.match(url) or _LOCAL_URL_RE.match(url)):
        raise bad_request(f"{what} URL '{url}' is invalid: Wrong HTTP URL")


def check_inline_keyboard(markup: JSON, *, allow_pay: bool = False) -> JSON:
    """Validate an InlineKeyboardMarkup (already type-checked); returns it unchanged."""
    for row_index, row in enumerate(markup.get("inline_keyboard", [])):
        for col_index, button in enumerate(row):
            actions = [
                name
                for name in INLINE_ACTIONS
                if name in button
                and not (name == "callback_data" and button[name] == "")
                and not (name == "pay" and button[name] is False)
            ]
            if not actions:
                raise bad_request(_BUTTON + "Text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise bad_request(
                    _BUTTON + "exactly one of the optional fields must be used to specify the "
                    f"type of the button, found {', '.join(actions)}"
                )
            action = actions[0]
            if action == "callback_data":
                data = button["callback_data"].encode("utf-8")
                if len(data) > limits.CALLBACK_DATA_MAX_BYTES:
                    raise bad_request("BUTTON_DATA_INVALID")
            elif action == "url":
                _check_url(button["url"], "inline keyboard button")
            elif action == "web_app":
                url = button["web_app"]["url"]
                if not url.lower().startswith("https://"):
                    raise bad_request(
                        f"inline keyboard button Web App URL '{url}' is invalid: "
                        "Only HTTPS links are allowed"
                    )
            elif action == "copy_text":
                if not 1 <= len(button["copy_text"]["text"]) <= 256:
                    raise bad_request("BUTTON_COPY_TEXT_INVALID")
            elif action == "pay":
                if not allow_pay or (row_index, col_index) != (0, 0):
                    raise bad_request("BUTTON_TYPE_INVALID")
            elif action == "callback_game":
                raise bad_request("BUTTON_TYPE_INVALID")
    return markup


def check_reply_markup(markup: JSON | None, *, allow_pay: bool = False) -> JSON | None:
    """Any of the four reply_markup kinds; only inline keyboards need extra checks."""
    if markup is None:
        return None
    if "inline_keyboard" in markup:
        return check_inline_keyboard(markup, allow_pay=allow_pay)
    for row in markup.get("keyboard", []):
        for button in row:
            web_app = button.get("web_app")
            if web_app and not web_app["url"].lower().startswith("https://"):
                raise bad_request(
                    f"keyboard button Web App URL '{web_app['url']}' is invalid: "
                    "Only HTTPS links are allowed"
                )
    return markup


def inline_of(markup: JSON | None) -> JSON | None:
    """The part of reply_markup that Telegram keeps on the message (inline only)."""
    if markup is not None and "inline_keyboard" in markup:
        if not any(markup["inline_keyboard"]):
            return None  # an empty inline keyboard removes the keyboard
        return markup
    return None
