"""Simulated Telegram users: they write to the bot, press buttons, pay, block it.

Everything a :class:`SimUser` does becomes a real update for the bot (``message``,
``edited_message``, ``callback_query``, ``poll_answer``, ``poll``,
``pre_checkout_query``, ``my_chat_member``...), delivered by getUpdates or the webhook
exactly as Telegram would deliver it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import limits, polls
from .entities import detect_entities
from .errors import ApiError
from .media import STICKER_SIDE, MediaResolver
from .messages import ChatMessage, render_transcript
from .methods_content import dice_emoji, location_object, roll
from .payments import PaymentResult, pay_invoice, push_subscription_update, renew
from .state import (
    BotState,
    CallbackQueryRecord,
    EmulatorState,
    PollRecord,
    StoredMessage,
    UserProfile,
    copy_json,
    now,
)

JSON = dict[str, Any]
# What a sticker upload holds when a test gives no bytes: a .WEBP header, enough to be
# a file (the emulator never decodes a sticker whose size is given).
_FAKE_WEBP = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
    b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
)


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
    def reply_keyboard_buttons(self) -> list[list[dict[str, Any]]]:
        """The custom keyboard's buttons as the bot sent them (``request_location``,
        ``request_contact``...)."""
        return [[dict(button) for button in row] for row in self.chat.reply_keyboard_buttons]

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

    # -- places, contacts, stickers, dice ---------------------------------------------------

    def _reply(self, reply_to: ChatMessage | None) -> JSON:
        if reply_to is None:
            return {}
        replied = self.chat.messages.get(reply_to.message_id)
        return {"reply_to_message": copy_json(replied.raw)} if replied is not None else {}

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        *,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
        heading: int | None = None,
        reply_to: ChatMessage | None = None,
    ) -> ChatMessage:
        """Share a location (as the attachment menu or a ``request_location`` button
        does); ``live_period`` makes it a live location."""
        try:
            location = location_object(
                {
                    "latitude": latitude,
                    "longitude": longitude,
                    "horizontal_accuracy": horizontal_accuracy,
                    "live_period": live_period,
                    "heading": heading,
                }
            )
        except ApiError as error:
            raise ValueError(error.description) from None
        message = self._post(self._reply(reply_to) | {"location": location})
        await asyncio.sleep(0)
        return message

    async def send_venue(
        self,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
        *,
        foursquare_id: str | None = None,
        google_place_id: str | None = None,
    ) -> ChatMessage:
        try:
            location = location_object({"latitude": latitude, "longitude": longitude})
        except ApiError as error:
            raise ValueError(error.description) from None
        venue: JSON = {"location": location, "title": title, "address": address}
        if foursquare_id:
            venue["foursquare_id"] = foursquare_id
        if google_place_id:
            venue["google_place_id"] = google_place_id
        message = self._post({"location": copy_json(location), "venue": venue})
        await asyncio.sleep(0)
        return message

    async def send_contact(
        self,
        phone_number: str,
        first_name: str,
        last_name: str | None = None,
        *,
        user_id: int | None = None,
        vcard: str | None = None,
    ) -> ChatMessage:
        """Share a contact from the address book (``user_id`` when it is a Telegram user)."""
        if not phone_number or not first_name:
            raise ValueError("a contact needs a phone number and a first name")
        contact: JSON = {"phone_number": phone_number, "first_name": first_name}
        if last_name:
            contact["last_name"] = last_name
        if user_id is not None:
            contact["user_id"] = user_id
        if vcard:
            contact["vcard"] = vcard
        message = self._post({"contact": contact})
        await asyncio.sleep(0)
        return message

    async def share_contact(self, phone_number: str) -> ChatMessage:
        """Share one's own contact, as a ``request_contact`` button does."""
        return await self.send_contact(
            phone_number,
            self.profile.first_name,
            self.profile.last_name,
            user_id=self.id,
        )

    async def send_sticker(
        self,
        emoji: str = "👍",
        *,
        file_id: str | None = None,
        data: bytes | None = None,
        is_animated: bool = False,
        is_video: bool = False,
        width: int = STICKER_SIDE,
        height: int = STICKER_SIDE,
        set_name: str | None = None,
    ) -> ChatMessage:
        """Send a sticker: a new one (``data``, fake .WEBP bytes by default; ``is_animated``
        makes it a .TGS, ``is_video`` a .WEBM) or one already sent (``file_id``)."""
        if file_id is not None:
            record = self._state.files.get(file_id)
            if record is None or record.kind != "sticker":
                raise LookupError(f"no sticker with file_id {file_id!r}")
        else:
            name = "sticker.tgs" if is_animated else "sticker.webm" if is_video else None
            record = await self._media.store_sticker(
                data if data is not None else _FAKE_WEBP,
                file_name=name,
                emoji=emoji,
                width=width,
                height=height,
                set_name=set_name,
            )
        message = self._post({"sticker": record.as_object()})
        await asyncio.sleep(0)
        return message

    async def send_dice(self, emoji: str = "🎲") -> ChatMessage:
        """Throw a dice (🎲 🎯 🏀 ⚽ 🎳 🎰): a random value, as Telegram picks it."""
        try:
            emoji = dice_emoji(emoji)
        except ApiError:
            raise ValueError(f"{emoji!r} is not a dice emoji") from None
        message = self._post({"dice": {"emoji": emoji, "value": roll(emoji)}})
        await asyncio.sleep(0)
        return message

    # -- polls ---------------------------------------------------------------------------------

    async def send_poll(
        self,
        question: str,
        options: Sequence[str],
        *,
        type: str = "regular",  # noqa: A002 - the Bot API's name
        is_anonymous: bool = True,
        allows_multiple_answers: bool = False,
        correct_option_ids: Sequence[int] | None = None,
        explanation: str | None = None,
    ) -> ChatMessage:
        """Send a poll of one's own (as a ``request_poll`` button lets the user do). The
        bot sees it, but, not having sent it, gets no updates about its votes."""
        if not question or not 1 <= len(options) <= limits.POLL_OPTIONS_MAX:
            raise ValueError(f"a poll needs a question and 1-{limits.POLL_OPTIONS_MAX} options")
        if type not in ("regular", "quiz"):
            raise ValueError('type is "regular" or "quiz"')
        correct = list(correct_option_ids or [])
        if type == "quiz" and (not correct or any(not 0 <= i < len(options) for i in correct)):
            raise ValueError("a quiz needs its correct option ids")
        record = PollRecord(
            id=polls.new_poll_id(self._state),
            chat_id=self.chat.id,
            sent_by_bot=False,
            question=question,
            options=[{"text": text} for text in options],
            type=type,
            is_anonymous=is_anonymous,
            allows_multiple_answers=allows_multiple_answers,
            allows_revoting=type != "quiz",
            correct_option_ids=sorted(set(correct)) if type == "quiz" else None,
            explanation=explanation if type == "quiz" else None,
        )
        message = self._post({"poll": record.to_poll(in_message=True)})
        record.message_id = message.message_id
        polls.register(self._state, self.bot, record)
        await asyncio.sleep(0)
        return message

    async def vote(self, poll_message: ChatMessage, option_ids: int | Sequence[int]) -> None:
        """Answer a poll of the chat (several options where it allows multiple answers;
        an empty list retracts the vote). For a non-anonymous poll the bot sent, the bot
        gets ``poll_answer``; for any poll it sent, ``poll`` with the new counts. A vote
        the app would refuse (closed poll, a second vote in a quiz) raises ValueError."""
        stored = self.chat.messages.get(poll_message.message_id)
        record = polls.poll_of(self.bot, stored) if stored is not None else None
        if record is None:
            raise LookupError(f"message #{poll_message.message_id} is not a poll of this chat")
        chosen = [option_ids] if isinstance(option_ids, int) else list(option_ids)
        self._mark_action()
        polls.vote(self.bot, record, self.profile, chosen)
        await asyncio.sleep(0)

    async def retract_vote(self, poll_message: ChatMessage) -> None:
        await self.vote(poll_message, [])

    # -- editing ---------------------------------------------------------------------------------

    async def edit_text(self, message: ChatMessage, new_text: str) -> ChatMessage:
        """Edit one's own earlier message (its text, or a media message's caption): the
        bot gets ``edited_message`` with ``edit_date``."""
        stored = self.chat.messages.get(message.message_id)
        if stored is None or stored.from_bot:
            raise LookupError(f"message #{message.message_id} is not one of the user's messages")
        raw = copy_json(stored.raw)
        if "text" in raw:
            if not new_text.strip():
                raise ValueError("a text message can't be edited to an empty text")
            content: JSON = {"text": new_text}
            if entities := detect_entities(new_text, []):
                content["entities"] = entities
        elif any(key in raw for key in ("photo", "video", "animation", "audio", "document")):
            content = _caption(new_text)
        else:
            raise ValueError(f"message #{message.message_id} has no text or caption to edit")
        old = {k: raw.get(k) for k in ("text", "entities", "caption", "caption_entities")}
        if old == {k: content.get(k) for k in old}:
            raise ValueError("the new text is the same as the old one")
        for key in (*old, "edit_date"):
            raw.pop(key, None)
        self._mark_action()
        self._state.replace_content(self.chat, stored, raw | content)
        if not self.chat.blocked:
            self._deliver("edited_message", copy_json(stored.raw))
        await asyncio.sleep(0)
        return _snapshot(stored)

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
                if not isinstance(payload, dict):
                    continue
                sender = payload.get("from") or payload.get("user") or {}
                if sender.get("id") == self.id:
                    return True
                poll = self.bot.polls.get(str(payload.get("id"))) if "options" in payload else None
                if poll is not None and poll.chat_id == self.chat.id:
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
