"""``ChatMessage``: a message as the simulated user sees it, and transcript rendering."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

_MEDIA_KINDS = ("photo", "animation", "video", "audio", "document", "sticker")
_SERVICE_KINDS = ("invoice", "successful_payment", "refunded_payment")
# Contents without a file (a venue also carries its location).
_PLAIN_KINDS = ("poll", "venue", "location", "contact", "dice")


@dataclass
class ChatMessage:
    """One message of a chat. ``raw`` is the Message object as Telegram returns it."""

    message_id: int
    from_bot: bool
    text: str | None
    kind: str
    buttons: list[list[str]] = field(default_factory=list)
    callback_data: list[list[str | None]] = field(default_factory=list)
    urls: list[list[str | None]] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    media_type: str | None = None
    invoice: JSON | None = None
    entities: list[JSON] = field(default_factory=list)
    edited: bool = False
    media_group_id: str | None = None
    raw: JSON = field(default_factory=dict, repr=False)

    @classmethod
    def from_raw(cls, raw: JSON, *, from_bot: bool, edited: bool = False) -> ChatMessage:
        media_type = next((k for k in _MEDIA_KINDS if k in raw), None)
        kind = next((k for k in _SERVICE_KINDS if k in raw), None)
        if kind is None:
            if media_type is not None:
                kind = "media_group item" if "media_group_id" in raw else media_type
            elif plain := next((k for k in _PLAIN_KINDS if k in raw), None):
                kind = plain
            elif "text" in raw:
                kind = "text"
            else:
                kind = "other"
        media: list[str] = []
        if media_type == "photo":
            media = [size["file_id"] for size in raw["photo"]]
        elif media_type is not None:
            media = [raw[media_type]["file_id"]]
        rows = (raw.get("reply_markup") or {}).get("inline_keyboard", [])
        return cls(
            message_id=raw["message_id"],
            from_bot=from_bot,
            text=raw.get("text", raw.get("caption")),
            kind=kind,
            buttons=[[b["text"] for b in row] for row in rows],
            callback_data=[[b.get("callback_data") for b in row] for row in rows],
            urls=[[b.get("url") for b in row] for row in rows],
            media=media,
            media_type=media_type,
            invoice=raw.get("invoice"),
            entities=list(raw.get("entities") or raw.get("caption_entities") or []),
            edited=edited or "edit_date" in raw,
            media_group_id=raw.get("media_group_id"),
            raw=raw,
        )

    @property
    def file_id(self) -> str | None:
        """The main file (the largest size of a photo)."""
        return self.media[-1] if self.media else None

    @property
    def flat_buttons(self) -> list[str]:
        return [label for row in self.buttons for label in row]

    @property
    def poll(self) -> JSON | None:
        """The Poll object, with the counts as they were when this snapshot was taken."""
        return self.raw.get("poll")

    @property
    def location(self) -> JSON | None:
        return self.raw.get("location")

    @property
    def venue(self) -> JSON | None:
        return self.raw.get("venue")

    @property
    def contact(self) -> JSON | None:
        return self.raw.get("contact")

    @property
    def dice(self) -> JSON | None:
        return self.raw.get("dice")

    @property
    def sticker(self) -> JSON | None:
        return self.raw.get("sticker")

    def _describe(self) -> str | None:
        """A line for contents without text (polls, locations, contacts...)."""
        raw = self.raw
        if self.kind == "poll":
            poll = raw["poll"]
            options = " | ".join(
                f"{o['text']} ({o['voter_count']})" for o in poll.get("options", [])
            )
            closed = ", closed" if poll.get("is_closed") else ""
            return f"{poll.get('type', 'regular')}{closed}: {poll['question']} [{options}]"
        if self.kind == "venue":
            return f"{raw['venue']['title']}, {raw['venue']['address']}"
        if self.kind == "location":
            location = raw["location"]
            live = f" (live {location['live_period']}s)" if "live_period" in location else ""
            return f"{location['latitude']}, {location['longitude']}{live}"
        if self.kind == "contact":
            contact = raw["contact"]
            name = " ".join(filter(None, [contact["first_name"], contact.get("last_name")]))
            return f"{name} {contact['phone_number']}"
        if self.kind == "dice":
            return f"{raw['dice']['emoji']} {raw['dice']['value']}"
        if self.kind == "sticker":
            return str(raw["sticker"].get("emoji") or "")
        return None

    def render(self) -> str:
        who = "bot" if self.from_bot else "user"
        parts = [f"#{self.message_id} {who}"]
        if self.kind != "text":
            parts.append(f"[{self.kind}]")
        if self.invoice:
            parts.append(
                f"{self.invoice['title']!r} {self.invoice['total_amount']} "
                f"{self.invoice['currency']}"
            )
        payment = self.raw.get("successful_payment") or self.raw.get("refunded_payment")
        if payment:
            parts.append(
                f"{payment['total_amount']} {payment['currency']} "
                f"payload={payment['invoice_payload']!r} "
                f"charge={payment['telegram_payment_charge_id']}"
            )
        if self.text is not None:
            parts.append(self.text)
        elif (description := self._describe()) is not None:
            parts.append(description)
        line = " ".join(parts)
        if self.edited:
            line += " (edited)"
        for row in self.buttons:
            line += "\n    " + " | ".join(f"[{label}]" for label in row)
        return line

    def __str__(self) -> str:
        return self.render()


def render_transcript(messages: Iterable[ChatMessage]) -> str:
    lines = [message.render() for message in messages]
    return "\n".join(lines) if lines else "(no messages)"
