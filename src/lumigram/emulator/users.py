"""Simulated Telegram users: they write to the bot, press buttons, pay, block it.

Everything a :class:`SimUser` does becomes a real update for the bot (``message``,
``callback_query``, ``pre_checkout_query``, ``my_chat_member``...), delivered by
getUpdates or the webhook exactly as Telegram would deliver it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .entities import detect_entities
from .errors import ApiError
from .media import MediaResolver
from .messages import ChatMessage, render_transcript
from .payments import PaymentResult, pay_invoice, push_subscription_update, renew
from .state import (
    BotState,
    CallbackQueryRecord,
    EmulatorState,
    StoredMessage,
    UserProfile,
    copy_json,
    now,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class CallbackAnswer:
    """What the bot answered to a callback query (answerCallbackQuery)."""

    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int


class SimUser:
    def __init__(
        self,
        state: EmulatorState,
        bot: BotState,
        profile: UserProfile,
        media: MediaResolver,
    ) -> None:
        self._state = state
        self._media = media
        self.bot = bot
        self.profile = profile
        self.chat = state.private_chat(bot, profile)
        self._cursor = 0  # events after this sequence number answer the last action
        self._last_action = time.monotonic()

    # -- identity --------------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.profile.id

    @property
    def chat_id(self) -> int:
        return self.chat.id

    def __repr__(self) -> str:
        return f"SimUser({self.profile.id}, {self.profile.first_name!r}, bot={self.bot.username})"

    # -- what the user sees ------------------------------------------------------------------

    @property
    def transcript(self) -> list[ChatMessage]:
        """The private chat in order; deleted messages are gone, edits are in place."""
        return [_snapshot(m) for m in self.chat.messages.values()]

    @property
    def bot_messages(self) -> list[ChatMessage]:
        return [_snapshot(m) for m in self.chat.messages.values() if m.from_bot]

    @property
    def last_bot_message(self) -> ChatMessage | None:
        messages = self.bot_messages
        return messages[-1] if messages else None

    @property
    def reply_keyboard(self) -> list[list[str]]:
        """Labels of the custom keyboard the bot shows (answer with ``send_text``)."""
        return [list(row) for row in self.chat.reply_keyboard]

    @property
    def chat_actions(self) -> list[str]:
        return list(self.chat.chat_actions)

    def render(self) -> str:
        return render_transcript(self.transcript)

    # -- acting ------------------------------------------------------------------------------

    def _mark_action(self) -> None:
        self._cursor = self.chat.events[-1].seq if self.chat.events else 0
        self._last_action = time.monotonic()

    def _deliver(self, update_type: str, payload: JSON) -> None:
        self.bot.updates.push(update_type, payload)

    def _post(self, content: JSON) -> ChatMessage:
        if self.chat.blocked:  # writing to a blocked bot restarts it, as in the apps
            self.unblock_bot()
        self._mark_action()
        stored = self._state.add_message(
            self.bot, self.chat, sender=self.profile.to_user(), from_bot=False, content=content
        )
        self._deliver("message", copy_json(stored.raw))
        return _snapshot(stored)

    async def send_text(self, text: str, *, reply_to: ChatMessage | None = None) -> ChatMessage:
        """Send a text message; commands, mentions and links get their entities."""
        content: JSON = {}
        if reply_to is not None:
            replied = self.chat.messages.get(reply_to.message_id)
            if replied is not None:
                content["reply_to_message"] = copy_json(replied.raw)
        content["text"] = text
        entities = detect_entities(text, [])
        if entities:
            content["entities"] = entities
        message = self._post(content)
        await asyncio.sleep(0)
        return message

    async def send_photo(
        self, data: bytes, filename: str = "photo.jpg", caption: str | None = None
    ) -> ChatMessage:
        try:
            sent = await self._media.store_photo(data)
        except ApiError as error:
            raise ValueError(f"{filename}: {error.description}") from None
        content: JSON = {"photo": [record.photo_size() for record in sent.records]}
        content |= _caption(caption)
        return self._post(content)

    async def send_document(
        self,
        data: bytes,
        filename: str = "file.bin",
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> ChatMessage:
        record = self._state.files.add(
            data, kind="document", file_name=filename, mime_type=mime_type
        )
        content: JSON = {"document": record.as_object()} | _caption(caption)
        message = self._post(content)
        await asyncio.sleep(0)
        return message

    def _find_button(self, label: str, message: ChatMessage | None) -> tuple[StoredMessage, JSON]:
        if message is not None:
            stored = self.chat.messages.get(message.message_id)
            candidates = [stored] if stored is not None else []
        else:
            candidates = [m for m in reversed(self.chat.messages.values()) if m.from_bot]
        for exact in (True, False):
            for stored in candidates:
                markup = stored.raw.get("reply_markup") or {}
                for row in markup.get("inline_keyboard", []):
                    for button in row:
                        text = button["text"]
                        if text == label if exact else label in text:
                            return stored, button
        visible = [
            f"#{m.message_id}: " + " | ".join(b["text"] for row in rows for b in row)
            for m in candidates
            if (rows := (m.raw.get("reply_markup") or {}).get("inline_keyboard"))
        ]
        raise LookupError(
            f"no inline button {label!r}; visible buttons: "
            + ("; ".join(visible) if visible else "none")
        )

    async def press(self, label: str, message: ChatMessage | None = None) -> str:
        """Press an inline button (exact label first, then substring); returns the
        callback query id to pass to :meth:`wait_callback_answer`."""
        stored, button = self._find_button(label, message)
        if "callback_data" not in button:
            kind = next((k for k in button if k != "text"), "?")
            hint = " (use pay())" if kind == "pay" else ""
            raise ValueError(f"button {label!r} is a {kind} button, not a callback button{hint}")
        query_id = str(self._state.next_number() * 7919 + 4_000_000_000_000_000)
        answer: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self.bot.callback_queries[query_id] = CallbackQueryRecord(
            query_id, self.id, self.chat.id, stored.message_id, button["callback_data"], answer
        )
        self._mark_action()
        self._deliver(
            "callback_query",
            {
                "id": query_id,
                "from": self.profile.to_user(),
                "message": copy_json(stored.raw),
                "chat_instance": str((self.bot.id * 1_000_003 + self.chat.id) % 10**18),
                "data": button["callback_data"],
            },
        )
        await asyncio.sleep(0)
        return query_id

    async def wait_callback_answer(self, query_id: str, timeout: float = 5.0) -> CallbackAnswer:
        record = self.bot.callback_queries.get(query_id)
        if record is None:
            raise LookupError(f"unknown callback query {query_id!r}")
        try:
            answer = await asyncio.wait_for(asyncio.shield(record.answer), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the bot did not answer callback query {query_id} within {timeout}s"
            ) from None
        return CallbackAnswer(
            text=answer["text"],
            show_alert=answer["show_alert"],
            url=answer["url"],
            cache_time=answer["cache_time"],
        )

    # -- payments ------------------------------------------------------------------------------

    async def pay(
        self,
        invoice_message: ChatMessage | None = None,
        timeout: float = 15.0,
        *,
        deliver: bool = True,
    ) -> PaymentResult:
        """Pay an invoice of the chat (the newest one by default). ``deliver=False``: the
        Stars are charged (the payment is in getStarTransactions) but the bot never gets
        the ``successful_payment`` update, as when an update is lost."""
        if invoice_message is not None:
            stored = self.chat.messages.get(invoice_message.message_id)
            if stored is None or stored.invoice_id is None:
                raise LookupError(f"message #{invoice_message.message_id} is not an invoice")
        else:
            invoices = [m for m in self.chat.messages.values() if m.invoice_id is not None]
            if not invoices:
                raise LookupError(f"no invoice in the chat:\n{self.render()}")
            stored = invoices[-1]
        assert stored.invoice_id is not None
        self._mark_action()
        invoice = self.bot.invoices[stored.invoice_id]
        return await pay_invoice(
            self._state, self.bot, self.profile, invoice, timeout, deliver=deliver
        )

    async def pay_link(
        self, url: str, timeout: float = 15.0, *, deliver: bool = True
    ) -> PaymentResult:
        """Pay an invoice link made by createInvoiceLink (``deliver`` as in ``pay``)."""
        invoice_id = self.bot.invoice_links.get(url)
        if invoice_id is None:
            raise LookupError(f"unknown invoice link {url!r}")
        self._mark_action()
        invoice = self.bot.invoices[invoice_id]
        return await pay_invoice(
            self._state, self.bot, self.profile, invoice, timeout, deliver=deliver
        )

    async def renew_subscription(
        self, charge_id: str, *, fail: bool = False, deliver: bool = True
    ) -> PaymentResult:
        """Charge the next period of a subscription (any of its charge ids); with
        ``fail=True`` the renewal fails and the bot gets a ``subscription`` update."""
        self._mark_action()
        result = renew(self._state, self.bot, self.profile, charge_id, fail=fail, deliver=deliver)
        await asyncio.sleep(0)
        return result

    async def change_subscription(self, charge_id: str, state: str = "canceled") -> JSON | None:
        """The user cancels ("canceled") or re-enables ("active") a subscription in the
        app: the bot gets a ``subscription`` update. Returns the update (None if the bot
        does not receive that update type)."""
        charge = self.bot.charges.get(charge_id)
        if charge is None or charge.user_id != self.id:
            raise LookupError(f"no charge {charge_id!r} of user {self.id}")
        first = self.bot.charges.get(charge.first_charge_id or charge.charge_id, charge)
        self._mark_action()
        update = push_subscription_update(self.bot, self.profile, first, state)
        await asyncio.sleep(0)
        return update

    # -- blocking ------------------------------------------------------------------------------

    def _member_update(self, old: str, new: str) -> None:
        def member(status: str) -> JSON:
            body: JSON = {"status": status, "user": self.bot.to_user()}
            if status == "kicked":
                body["until_date"] = 0
            return body

        self._deliver(
            "my_chat_member",
            {
                "chat": self.chat.to_chat(),
                "from": self.profile.to_user(),
                "date": now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def block_bot(self) -> None:
        if not self.chat.blocked:
            self.chat.blocked = True
            self._member_update("member", "kicked")

    def unblock_bot(self) -> None:
        if self.chat.blocked:
            self.chat.blocked = False
            self._member_update("kicked", "member")

    # -- waiting -------------------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[ChatMessage], bool], timeout: float = 5.0
    ) -> ChatMessage:
        """The first bot message, new or edited since the user's last action, that
        matches ``predicate`` (waiting for it if needed)."""
        deadline = time.monotonic() + timeout
        index = next(
            (i for i, event in enumerate(self.chat.events) if event.seq > self._cursor),
            len(self.chat.events),
        )
        while True:
            while index < len(self.chat.events):
                event = self.chat.events[index]
                index += 1
                if event.from_bot and event.kind in ("new", "edit"):
                    message = ChatMessage.from_raw(
                        copy_json(event.raw), from_bot=True, edited=event.edited
                    )
                    if predicate(message):
                        return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no matching bot message within {timeout}s; transcript:\n{self.render()}"
                )
            await self.chat.changed.wait(remaining)

    async def wait_for_text(self, substring: str, timeout: float = 5.0) -> ChatMessage:
        try:
            return await self.wait_for(
                lambda m: m.text is not None and substring in m.text, timeout
            )
        except TimeoutError as error:
            raise TimeoutError(f"waiting for text {substring!r}: {error}") from None

    def _pending_for_me(self) -> bool:
        for update in self.bot.updates.pending:
            for payload in update.values():
                if isinstance(payload, dict) and (payload.get("from") or {}).get("id") == self.id:
                    return True
        return False

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until the bot has fetched this user's updates and has sent, edited or
        deleted nothing in the chat for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            current = time.monotonic()
            idle_for = current - max(self.chat.last_bot_activity, self._last_action)
            if idle_for >= quiet and not self._pending_for_me():
                return
            if current >= deadline:
                raise TimeoutError(
                    f"the bot did not go idle within {timeout}s; transcript:\n{self.render()}"
                )
            await asyncio.sleep(max(0.01, min(quiet - idle_for, deadline - current, 0.05)))


def _snapshot(stored: StoredMessage) -> ChatMessage:
    raw = copy_json(stored.raw)
    return ChatMessage.from_raw(raw, from_bot=stored.from_bot, edited=stored.edited)


def _caption(caption: str | None) -> JSON:
    if not caption:
        return {}
    content: JSON = {"caption": caption}
    entities = detect_entities(caption, [])
    if entities:
        content["caption_entities"] = entities
    return content
