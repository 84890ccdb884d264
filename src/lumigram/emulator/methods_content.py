"""Locations (and live locations), venues, contacts, dice and stickers.

The checks and their wording are TDLib's (which the Bot API server uses): a point off
the map is "wrong location specified", a live period outside 60-86400 seconds (or
0x7FFFFFFF) "wrong live location period specified", and so on.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any

from . import limits
from .calls import (
    Call,
    Handler,
    check_flood,
    markup_content,
    reply_content,
    send_flags,
    target_chat,
)
from .errors import bad_request
from .methods_messages import apply_edit, edit_target
from .spec import Upload
from .state import ChatState, StoredMessage, copy_json, now

JSON = dict[str, Any]


def send_content(call: Call, chat: ChatState, content: JSON) -> Any:
    """Store a bot message with ``content`` plus what every send method adds."""
    markup = markup_content(call, chat)
    reply = reply_content(call, chat)
    check_flood(call, chat)
    stored = call.state.bot_message(call.bot, chat, reply | content | markup | send_flags(call))
    return copy_json(stored.raw)


# -- locations -----------------------------------------------------------------------------


def location_object(params: Mapping[str, Any]) -> JSON:
    """A Location from sendLocation-like parameters, checked as TDLib checks them."""
    latitude = float(params["latitude"])
    longitude = float(params["longitude"])
    if not (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and abs(latitude) <= 90
        and abs(longitude) <= 180
    ):
        raise bad_request("wrong location specified")
    period = int(params.get("live_period") or 0)
    if (
        period
        and period != limits.LIVE_PERIOD_FOREVER
        and not (limits.LIVE_PERIOD_MIN <= period <= limits.LIVE_PERIOD_MAX)
    ):
        raise bad_request("wrong live location period specified")
    heading = int(params.get("heading") or 0)
    if heading and not 1 <= heading <= limits.HEADING_MAX:
        raise bad_request("wrong live location heading specified")
    radius = int(params.get("proximity_alert_radius") or 0)
    if not 0 <= radius <= limits.PROXIMITY_ALERT_RADIUS_MAX:
        raise bad_request("wrong live location proximity alert radius specified")
    location: JSON = {"latitude": latitude, "longitude": longitude}
    accuracy = float(params.get("horizontal_accuracy") or 0.0)
    if accuracy > 0:
        location["horizontal_accuracy"] = min(accuracy, float(limits.HORIZONTAL_ACCURACY_MAX))
    if period:  # heading and alert radius are "for live locations" only
        location["live_period"] = period
        if heading:
            location["heading"] = heading
        if radius:
            location["proximity_alert_radius"] = radius
    return location


async def send_location(call: Call) -> Any:
    chat = target_chat(call)
    return send_content(call, chat, {"location": location_object(call.params)})


def _live_location(call: Call) -> tuple[ChatState, StoredMessage, JSON]:
    """The bot's live location message that can still be edited."""
    chat, stored = edit_target(call)
    location = stored.raw.get("location")
    if not isinstance(location, dict) or "venue" in stored.raw or "live_period" not in location:
        raise bad_request("message can't be edited")
    period = int(location["live_period"])
    if period != limits.LIVE_PERIOD_FOREVER and int(stored.raw["date"]) + period < now():
        raise bad_request("message can't be edited")
    return chat, stored, location


async def edit_message_live_location(call: Call) -> Any:
    chat, stored, current = _live_location(call)
    params = dict(call.params)
    params.setdefault("live_period", current["live_period"])
    content = {"location": location_object(params)} | markup_content(call)
    return apply_edit(call, chat, stored, content, ("location", "reply_markup"))


async def stop_message_live_location(call: Call) -> Any:
    chat, stored, current = _live_location(call)
    live_only = ("live_period", "heading", "proximity_alert_radius")
    stopped = {k: v for k, v in current.items() if k not in live_only}
    content = {"location": stopped} | markup_content(call)
    return apply_edit(call, chat, stored, content, ("location", "reply_markup"))


async def send_venue(call: Call) -> Any:
    chat = target_chat(call)
    location = location_object(
        {"latitude": call.params["latitude"], "longitude": call.params["longitude"]}
    )
    venue: JSON = {
        "location": location,
        "title": call.params["title"],
        "address": call.params["address"],
    }
    for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
        if call.get(key):
            venue[key] = call.params[key]
    # "For backward compatibility, when this field is set, the location field will also
    # be set."
    return send_content(call, chat, {"location": copy_json(location), "venue": venue})


# -- contacts, dice, stickers ------------------------------------------------------------------


async def send_contact(call: Call) -> Any:
    chat = target_chat(call)
    contact: JSON = {
        "phone_number": call.params["phone_number"],
        "first_name": call.params["first_name"],
    }
    for key in ("last_name", "vcard"):
        if call.get(key):
            contact[key] = call.params[key]
    return send_content(call, chat, {"contact": contact})


def dice_emoji(value: str | None) -> str:
    """The dice emoji in Telegram's spelling (without a variation selector)."""
    emoji = (value or "🎲").replace("\ufe0f", "")
    if emoji not in limits.DICE_VALUES:
        raise bad_request("EMOTICON_INVALID")
    return emoji


def roll(emoji: str) -> int:
    return secrets.randbelow(limits.DICE_VALUES[emoji]) + 1


async def send_dice(call: Call) -> Any:
    chat = target_chat(call)
    emoji = dice_emoji(call.get("emoji"))
    return send_content(call, chat, {"dice": {"emoji": emoji, "value": roll(emoji)}})


async def send_sticker(call: Call) -> Any:
    chat = target_chat(call)
    value = call.params["sticker"]
    sent = await call.runtime.media.resolve(value, kind="sticker")
    record = sent.main
    is_new = isinstance(value, Upload) or str(value).startswith(("http://", "https://"))
    if is_new and call.get("emoji"):  # "Emoji associated with the sticker; only for just
        record.emoji = call.params["emoji"]  # uploaded stickers"
    return send_content(call, chat, {"sticker": record.as_object()})


HANDLERS: dict[str, Handler] = {
    "sendLocation": send_location,
    "editMessageLiveLocation": edit_message_live_location,
    "stopMessageLiveLocation": stop_message_live_location,
    "sendVenue": send_venue,
    "sendContact": send_contact,
    "sendDice": send_dice,
    "sendSticker": send_sticker,
}
