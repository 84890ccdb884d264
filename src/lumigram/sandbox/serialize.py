"""What the simulation API shows: messages, formatted text, Bot API calls, as JSON.

Messages come from the emulator's stored ``Message`` objects (``raw``); their text is
rendered to safe HTML from its entities (UTF-16 offsets, as Telegram counts them):
everything that is not markup the renderer made itself is escaped.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from lumigram.emulator import ChatMessage, RecordedRequest

JSON = dict[str, Any]

# Media kinds of a Message, in the order ChatMessage looks for them.
MEDIA_KINDS = ("photo", "animation", "video", "audio", "voice", "video_note", "document", "sticker")
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_MAX_PARAM_TEXT = 2000  # longer strings in the call log are cut


# -- formatted text ------------------------------------------------------------------------


def _units(text: str) -> bytes:
    return text.encode("utf-16-le")


def _slice(units: bytes, start: int, end: int) -> str:
    return units[2 * start : 2 * end].decode("utf-16-le", errors="replace")


def _safe_href(url: str) -> str | None:
    url = url.strip()
    if not url:
        return None
    lowered = url.lower()
    if lowered.startswith(_SAFE_SCHEMES):
        return url
    if ":" in lowered.split("/", 1)[0]:  # another scheme (javascript:...): no link
        return None
    return "http://" + url


def _open_tag(entity: Mapping[str, Any], body: str) -> tuple[str, str]:
    """The opening and closing tags of one entity (``body``: its whole text)."""
    kind = entity.get("type")
    if kind == "bold":
        return "<b>", "</b>"
    if kind == "italic":
        return "<i>", "</i>"
    if kind == "underline":
        return "<u>", "</u>"
    if kind == "strikethrough":
        return "<s>", "</s>"
    if kind == "spoiler":
        return '<span class="tg-spoiler">', "</span>"
    if kind == "code":
        return "<code>", "</code>"
    if kind == "pre":
        language = entity.get("language")
        if isinstance(language, str) and language:
            cls = html.escape(f"language-{language}", quote=True)
            return f'<pre><code class="{cls}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "blockquote":
        return "<blockquote>", "</blockquote>"
    if kind == "expandable_blockquote":
        return '<blockquote class="tg-expandable">', "</blockquote>"
    href: str | None = None
    css = ""
    if kind == "text_link":
        href = _safe_href(str(entity.get("url") or ""))
    elif kind == "url":
        href = _safe_href(body)
    elif kind == "email":
        href = "mailto:" + body.strip()
    elif kind == "mention":
        href = "https://t.me/" + body.lstrip("@")
        css = "tg-mention"
    elif kind == "text_mention":
        return '<span class="tg-mention">', "</span>"
    elif kind in ("bot_command", "hashtag", "cashtag", "phone_number"):
        return f'<span class="tg-{kind.replace("_", "-")}">', "</span>"
    if href is None:
        return "", ""
    attributes = f'href="{html.escape(href, quote=True)}" target="_blank" rel="noopener noreferrer"'
    if css:
        attributes = f'class="{css}" ' + attributes
    return f"<a {attributes}>", "</a>"


def entities_to_html(text: str | None, entities: Sequence[Mapping[str, Any]] | None) -> str:
    """``text`` with its Telegram entities as HTML tags; all text escaped, line breaks as
    ``<br>``. Overlapping entities are closed and reopened, so the HTML nests."""
    if not text:
        return ""
    units = _units(text)
    size = len(units) // 2
    spans: list[tuple[int, int, int, Mapping[str, Any]]] = []
    for index, entity in enumerate(entities or []):
        offset, length = entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or length <= 0:
            continue
        start, end = max(0, offset), min(size, offset + length)
        if start < end:
            spans.append((start, end, index, entity))
    # Outer entities first: earlier start, then longer, then the order they were given.
    spans.sort(key=lambda span: (span[0], -(span[1] - span[0]), span[2]))
    points = sorted({0, size, *(s[0] for s in spans), *(s[1] for s in spans)})
    tags = {span[2]: _open_tag(span[3], _slice(units, span[0], span[1])) for span in spans}
    out: list[str] = []
    stack: list[int] = []  # indexes of the entities whose tags are open, outermost first
    for start, end in itertools.pairwise(points):
        active = [s[2] for s in spans if s[0] <= start and s[1] >= end]
        common = 0
        while common < len(stack) and common < len(active) and stack[common] == active[common]:
            common += 1
        for index in reversed(stack[common:]):
            out.append(tags[index][1])
        for index in active[common:]:
            out.append(tags[index][0])
        stack = active
        out.append(html.escape(_slice(units, start, end), quote=True).replace("\n", "<br>"))
    for index in reversed(stack):
        out.append(tags[index][1])
    return "".join(out)


# -- messages --------------------------------------------------------------------------------


def _media(raw: JSON) -> list[JSON]:
    for kind in MEDIA_KINDS:
        value = raw.get(kind)
        if not value:
            continue
        item: JSON = value[-1] if kind == "photo" and isinstance(value, list) else value
        if not isinstance(item, dict) or "file_id" not in item:
            continue
        described: JSON = {
            "type": kind,
            "file_id": item["file_id"],
            "url": f"/api/files/{item['file_id']}",
            "file_name": item.get("file_name"),
            "mime_type": item.get("mime_type"),
            "width": item.get("width"),
            "height": item.get("height"),
            "duration": item.get("duration"),
            "file_size": item.get("file_size"),
        }
        if kind == "sticker":
            described["emoji"] = item.get("emoji")
            described["is_animated"] = bool(item.get("is_animated"))
            described["is_video"] = bool(item.get("is_video"))
        return [described]
    return []


def _button(button: Mapping[str, Any], invoice_links: Mapping[str, JSON]) -> JSON:
    item: JSON = {"text": button.get("text", "")}
    if "callback_data" in button:
        item["type"] = "callback"
    elif "url" in button:
        item["type"] = "url"
        item["url"] = button["url"]
        invoice = invoice_links.get(str(button["url"]))
        if invoice is not None:  # an invoice link (subscriptions): pay it with /pay {"url"}
            item["invoice"] = invoice
    elif "pay" in button:
        item["type"] = "pay"
    elif "web_app" in button:
        item["type"] = "web_app"
        item["url"] = (button.get("web_app") or {}).get("url")
    elif "login_url" in button:
        item["type"] = "url"
        item["url"] = (button.get("login_url") or {}).get("url")
    elif "copy_text" in button:
        item["type"] = "copy_text"
        item["copy_text"] = (button.get("copy_text") or {}).get("text")
    else:
        item["type"] = next((key for key in button if key != "text"), "unknown")
    return item


def message_json(
    raw: JSON,
    *,
    from_bot: bool,
    edited: bool = False,
    deleted: bool = False,
    reply_keyboard: list[list[str]] | None = None,
    invoice_links: Mapping[str, JSON] | None = None,
) -> JSON:
    """A Message of the simulation API (docs/sandbox.md)."""
    snapshot = ChatMessage.from_raw(raw, from_bot=from_bot, edited=edited)
    text = raw.get("text", raw.get("caption"))
    entities = raw.get("entities") if "text" in raw else raw.get("caption_entities")
    rows = (raw.get("reply_markup") or {}).get("inline_keyboard") or []
    links = invoice_links or {}
    invoice = raw.get("invoice")
    buttons = [[_button(b, links) for b in row] for row in rows]
    if isinstance(invoice, dict) and not buttons:
        # "If empty, one 'Pay total price' button will be shown" (sendInvoice).
        price = f"⭐️{invoice.get('total_amount')}" if invoice.get("currency") == "XTR" else ""
        buttons = [[{"text": f"Pay {price}".strip(), "type": "pay"}]]
    result: JSON = {
        "message_id": raw["message_id"],
        "from": "bot" if from_bot else "user",
        "kind": snapshot.kind,
        "text": text,
        "html": entities_to_html(text, entities),
        "media": _media(raw),
        "buttons": buttons,
        "reply_keyboard": reply_keyboard,
        "invoice": (
            {
                "title": invoice.get("title"),
                "description": invoice.get("description"),
                "currency": invoice.get("currency"),
                "total_amount": invoice.get("total_amount"),
            }
            if isinstance(invoice, dict)
            else None
        ),
        "edited": snapshot.edited,
        "deleted": deleted,
        "date": raw.get("date"),
        "edit_date": raw.get("edit_date"),
        "media_group_id": raw.get("media_group_id"),
        "reply_to_message_id": (raw.get("reply_to_message") or {}).get("message_id"),
    }
    for key in (
        "successful_payment",
        "refunded_payment",
        "location",
        "venue",
        "contact",
        "poll",
        "dice",
    ):
        if key in raw:
            result[key] = raw[key]
    return result


# -- the call log ------------------------------------------------------------------------


def _short_value(value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("<Upload "):  # a multipart file: the emulator's repr, no bytes
            return value
        return value if len(value) <= _MAX_PARAM_TEXT else value[:_MAX_PARAM_TEXT] + "…"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): _short_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_short_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return repr(value)


def _summary(method: str, result: Any) -> str:
    if isinstance(result, dict) and "message_id" in result:
        kind = ChatMessage.from_raw(result, from_bot=True).kind
        return f"message #{result['message_id']} ({kind})"
    if isinstance(result, list):
        noun = "update" if method == "getUpdates" else "item"
        return f"{len(result)} {noun}{'' if len(result) == 1 else 's'}"
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, dict):
        if "file_path" in result:
            return f"file {result['file_path']}"
        if "username" in result:
            return f"@{result['username']}"
        return "{" + ", ".join(list(result)[:6]) + "}"
    if result is None:
        return ""
    text = str(result)
    return text if len(text) <= 200 else text[:200] + "…"


# A refusal for breaking the Bot API's rules (validation, an unknown method or token),
# as opposed to 403 (the user blocked the bot), 501 (the emulator lacks the method) and
# 429 (flood control: "throttled", shown apart; the bot waits and sends again, as it
# must with Telegram).
VIOLATION_STATUSES = frozenset({400, 401, 404})
THROTTLED_STATUS = 429


def call_json(seq: int, record: RecordedRequest) -> JSON:
    ok = record.status == 200 and bool(record.response.get("ok"))
    return {
        "seq": seq,
        "at": record.at,
        "method": record.method,
        "params": _short_value(record.params),
        "ok": ok,
        "status": record.status,
        "result_summary": _summary(record.method, record.response.get("result")) if ok else "",
        "error": None if ok else record.description,
        "retry_after": (record.response.get("parameters") or {}).get("retry_after"),
        "violation": record.status in VIOLATION_STATUSES,
        "throttled": record.status == THROTTLED_STATUS,
        "via": record.via,
    }
