"""The sandbox's web server: the UI's static files, the simulation API and its events.

Routes are listed in docs/sandbox.md. Live updates are server-sent events: a poller
looks at the emulator every ~100 ms (new chat events, chat actions, Bot API calls,
the state) and hands what changed to every open ``/api/events`` stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from lumigram.emulator import ChatMessage

from .serialize import call_json, message_json
from .session import Sandbox, SandboxError, SandboxUser

log = logging.getLogger(__name__)

JSON = dict[str, Any]
POLL_INTERVAL = 0.1
HEARTBEAT_SECONDS = 15.0
CALLBACK_ANSWER_TIMEOUT = 5.0
CALLS_LIMIT = 500
_QUEUE_SIZE = 5000
_UPLOAD_MAX = 60 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PortInUseError(Exception):
    """The sandbox's port is taken by another program."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


class EventHub:
    """Fans events out to every open SSE stream (a slow reader is dropped)."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str | None]] = set()

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE_SIZE)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self.queues.discard(queue)

    def publish(self, event: str, data: Any) -> None:
        if not self.queues:
            return
        lines = _dumps(data).replace("\r", "").split("\n")
        frame = f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"
        for queue in list(self.queues):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self.queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)  # told to go away at its next read

    def close(self) -> None:
        for queue in list(self.queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self.queues.clear()


class Watcher:
    """What changed in the emulator since the last look: the poller behind the events."""

    def __init__(self, sandbox: Sandbox, hub: EventHub) -> None:
        self.sandbox = sandbox
        self.hub = hub
        self.calls_seen = 0
        self.chat_events: dict[int, int] = {}
        self.chat_actions: dict[int, int] = {}
        self.reply_keyboards: dict[tuple[int, int], list[list[str]]] = {}
        self.last_state: JSON | None = None

    def tick(self) -> None:
        self._calls()
        self._chats()
        process = self.sandbox.bot_process
        if process.poll():
            log.warning(
                "the bot stopped by itself (exit code %s): %s (more in %s)",
                process.exit_code,
                process.last_log_line(),
                process.log_path,
            )
        state = self.sandbox.state_json()
        if state != self.last_state:
            self.last_state = state
            self.hub.publish("state", state)
        self.sandbox.save()

    def _calls(self) -> None:
        requests = self.sandbox.emulator.requests
        while self.calls_seen < len(requests):
            record = requests[self.calls_seen]
            self.calls_seen += 1
            if record.status == 200:
                self._note(record.method, record.params, record.response.get("result"))
            self.hub.publish("call", call_json(self.calls_seen, record))

    def _note(self, method: str, params: JSON, result: Any) -> None:
        if method == "refundStarPayment" and result is True:
            self.sandbox.note_refund(params)
        markup = params.get("reply_markup")
        if isinstance(result, dict) and "message_id" in result and isinstance(markup, dict):
            chat_id = (result.get("chat") or {}).get("id")
            if not isinstance(chat_id, int):
                return
            key = (chat_id, result["message_id"])
            if isinstance(markup.get("keyboard"), list):
                self.reply_keyboards[key] = [
                    [str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in row]
                    for row in markup["keyboard"]
                    if isinstance(row, list)
                ]
            elif markup.get("remove_keyboard"):
                self.reply_keyboards[key] = []

    def _chats(self) -> None:
        for user in list(self.sandbox.users.values()):
            chat = user.chat
            seen = self.chat_events.get(chat.id, 0)
            for event in chat.events[seen:]:
                message = self.message(
                    chat.id,
                    event.raw,
                    from_bot=event.from_bot,
                    edited=event.edited,
                    deleted=event.kind == "delete",
                )
                self.hub.publish("message", {"user_id": user.id, "message": message})
            self.chat_events[chat.id] = len(chat.events)
            done = self.chat_actions.get(chat.id, 0)
            for action in chat.chat_actions[done:]:
                self.hub.publish("action", {"user_id": user.id, "action": action})
            self.chat_actions[chat.id] = len(chat.chat_actions)

    def message(
        self,
        chat_id: int,
        raw: JSON,
        *,
        from_bot: bool,
        edited: bool = False,
        deleted: bool = False,
    ) -> JSON:
        return message_json(
            raw,
            from_bot=from_bot,
            edited=edited,
            deleted=deleted,
            reply_keyboard=self.reply_keyboards.get((chat_id, raw["message_id"])),
            invoice_links=self.sandbox.invoice_links(),
        )

    def skip_history(self) -> None:
        """Start from now: what happened before the server ran is in the transcripts."""
        self.calls_seen = len(self.sandbox.emulator.requests)
        for user in self.sandbox.users.values():
            self.chat_events[user.chat.id] = len(user.chat.events)
            self.chat_actions[user.chat.id] = len(user.chat.chat_actions)


# -- request helpers ------------------------------------------------------------------------


async def _body(request: web.Request) -> JSON:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise SandboxError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise SandboxError("the body must be a JSON object")
    return body


def _field(body: JSON, name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise SandboxError(f"{name} is required")
        return None
    if isinstance(value, bool) and not (kind is bool or (isinstance(kind, tuple) and bool in kind)):
        raise SandboxError(f"{name} must be {_kind_name(kind)}")
    if not isinstance(value, kind):
        raise SandboxError(f"{name} must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "an integer", str: "a string", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


async def _upload(request: web.Request) -> tuple[bytes, str, str | None, str | None]:
    """The multipart ``file`` (bytes, file name, content type) and ``caption``."""
    if request.content_type != "multipart/form-data":
        raise SandboxError("send multipart/form-data with a file field")
    reader = await request.multipart()
    data: bytes | None = None
    filename = "file"
    content_type: str | None = None
    caption: str | None = None
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            chunks: list[bytes] = []
            total = 0
            while chunk := await part.read_chunk(256 * 1024):
                total += len(chunk)
                if total > _UPLOAD_MAX:
                    raise SandboxError("the file is too big", 413)
                chunks.append(chunk)
            data = b"".join(chunks)
            filename = part.filename or filename
            content_type = part.headers.get("Content-Type")
        elif part.name == "caption":
            caption = (await part.text()) or None
    if data is None:
        raise SandboxError("the file field is missing")
    return data, filename, content_type, caption


class SandboxServer:
    """The aiohttp application over a :class:`Sandbox`, plus its poller."""

    def __init__(self, sandbox: Sandbox, static_dir: Path | None = None) -> None:
        self.sandbox = sandbox
        self.hub = EventHub()
        self.watcher = Watcher(sandbox, self.hub)
        self.static_dir = static_dir
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def bind(self, host: str, port: int) -> str:
        """Take the port (first: a busy port is reported before anything starts)."""
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(str(error)) from None
            raise
        actual = self._runner.addresses[0][1] if self._runner.addresses else port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        self.url = f"http://{shown}:{actual}"
        return self.url

    async def start(self) -> None:
        """Start the sandbox (emulator, fakes, bot) and the poller."""
        await self.sandbox.start()
        self.watcher.skip_history()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self.hub.close()
        await self.sandbox.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _poll(self) -> None:
        while True:
            try:
                self.watcher.tick()
            except Exception:
                log.exception("sandbox poller")
            await asyncio.sleep(POLL_INTERVAL)

    # -- the application ---------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=_UPLOAD_MAX + 1024 * 1024, middlewares=[_errors])
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/static/{path:.+}", self.static)
        r.add_get("/api/state", self.get_state)
        r.add_get("/api/events", self.events)
        r.add_post("/api/users", self.create_user)
        r.add_get("/api/users/{id}", self.get_user)
        r.add_post("/api/users/{id}/admin", self.set_admin)
        r.add_post("/api/users/{id}/block", self.set_block)
        r.add_post("/api/users/{id}/stars", self.add_stars)
        r.add_get("/api/users/{id}/messages", self.transcript)
        r.add_post("/api/users/{id}/messages", self.send_text)
        r.add_post("/api/users/{id}/photo", self.send_photo)
        r.add_post("/api/users/{id}/document", self.send_document)
        r.add_post("/api/users/{id}/location", self.send_location)
        r.add_post("/api/users/{id}/contact", self.send_contact)
        r.add_post("/api/users/{id}/sticker", self.send_sticker)
        r.add_post("/api/users/{id}/dice", self.send_dice)
        r.add_post("/api/users/{id}/poll", self.send_poll)
        r.add_post("/api/users/{id}/vote", self.vote)
        r.add_post("/api/users/{id}/edit", self.edit)
        r.add_post("/api/users/{id}/press", self.press)
        r.add_post("/api/users/{id}/pay", self.pay)
        r.add_get("/api/users/{id}/subscriptions", self.subscriptions)
        r.add_post("/api/users/{id}/subscriptions/{charge_id}", self.change_subscription)
        r.add_get("/api/files/{file_id}", self.file)
        r.add_get("/api/calls", self.calls)
        r.add_get("/api/commands", self.commands)
        r.add_post("/api/bot/restart", self.restart)
        r.add_post("/api/flood", self.flood)
        r.add_post("/api/clock", self.clock)
        r.add_get("/api/providers", self.providers)
        r.add_post("/api/providers/{name}/fault", self.provider_fault)
        r.add_route("*", "/api/{tail:.*}", self.not_found)
        return app

    # -- static files -----------------------------------------------------------------------------

    def _static_file(self, path: str) -> tuple[bytes, str] | None:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") or "\\" in p for p in parts):
            return None
        if self.static_dir is not None:
            target = self.static_dir.joinpath(*parts)
            if not target.is_file():
                return None
            data = target.read_bytes()
        else:
            resource = importlib.resources.files("lumigram.sandbox").joinpath("static", *parts)
            if not resource.is_file():
                return None
            data = resource.read_bytes()
        content_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        return data, content_type

    def _serve_static(self, path: str) -> web.Response:
        found = self._static_file(path)
        if found is None:
            raise web.HTTPNotFound(text=f"not found: /static/{path}")
        data, content_type = found
        charset = (
            "utf-8" if content_type.startswith("text/") or "javascript" in content_type else None
        )
        return web.Response(
            body=data,
            content_type=content_type,
            charset=charset,
            headers={"Cache-Control": "no-cache"},
        )

    async def index(self, request: web.Request) -> web.Response:
        return self._serve_static("index.html")

    async def static(self, request: web.Request) -> web.Response:
        return self._serve_static(request.match_info["path"])

    # -- state and users ------------------------------------------------------------------------

    def _user(self, request: web.Request) -> SandboxUser:
        try:
            user_id = int(request.match_info["id"])
        except ValueError:
            raise SandboxError("the user id must be a number", 404) from None
        return self.sandbox.get_user(user_id)

    async def get_state(self, request: web.Request) -> web.Response:
        return _json(self.sandbox.state_json())

    async def get_user(self, request: web.Request) -> web.Response:
        return _json(self._user(request).to_json())

    async def create_user(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self.sandbox.add_user(
            _field(body, "first_name", str),
            _field(body, "language_code", str, required=False),
        )
        self.sandbox.save()
        return _json(user.to_json())

    async def set_admin(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        await self.sandbox.set_admin(user.id, _field(body, "admin", bool))
        return _json(user.to_json())

    async def set_block(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        self.sandbox.set_blocked(user.id, _field(body, "blocked", bool))
        return _json(user.to_json())

    async def add_stars(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        self.sandbox.add_stars(user.id, _field(body, "amount", int))
        return _json(user.to_json())

    # -- the chat ---------------------------------------------------------------------------------

    def _message(self, user: SandboxUser, sent: ChatMessage) -> JSON:
        stored = user.chat.messages.get(sent.message_id)
        raw = stored.raw if stored is not None else sent.raw
        edited = stored.edited if stored is not None else sent.edited
        return self.watcher.message(user.chat.id, raw, from_bot=sent.from_bot, edited=edited)

    def _stored(self, user: SandboxUser, body: JSON) -> ChatMessage:
        message_id = _field(body, "message_id", int)
        stored = user.chat.messages.get(message_id)
        if stored is None:
            raise SandboxError(f"no message {message_id} in the chat", 404)
        return ChatMessage.from_raw(stored.raw, from_bot=stored.from_bot, edited=stored.edited)

    async def transcript(self, request: web.Request) -> web.Response:
        user = self._user(request)
        messages = [
            self.watcher.message(
                user.chat.id, stored.raw, from_bot=stored.from_bot, edited=stored.edited
            )
            for stored in list(user.chat.messages.values())
        ]
        return _json(messages)

    async def send_text(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        text = _field(body, "text", str)
        if not text.strip():
            raise SandboxError("text must not be empty")
        if len(text) > 4096:
            raise SandboxError("text must be at most 4096 characters")
        reply_to = None
        if body.get("reply_to_message_id") is not None:
            reply_to = self._stored(user, {"message_id": body["reply_to_message_id"]})
        return _json(self._message(user, await user.sim.send_text(text, reply_to=reply_to)))

    async def send_photo(self, request: web.Request) -> web.Response:
        user = self._user(request)
        data, filename, _type, caption = await _upload(request)
        try:
            sent = await user.sim.send_photo(data, filename=filename, caption=caption)
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, sent))

    async def send_document(self, request: web.Request) -> web.Response:
        user = self._user(request)
        data, filename, content_type, caption = await _upload(request)
        mime = content_type if content_type and content_type != "application/octet-stream" else None
        mime = mime or mimetypes.guess_type(filename)[0]
        sent = await user.sim.send_document(
            data, filename=filename, mime_type=mime, caption=caption
        )
        return _json(self._message(user, sent))

    async def send_location(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        latitude = float(_field(body, "latitude", (int, float)))
        longitude = float(_field(body, "longitude", (int, float)))
        try:
            sent = await user.sim.send_location(latitude, longitude)
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, sent))

    async def send_contact(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        phone = _field(body, "phone_number", str, required=False) or f"+1555{user.id:07d}"
        first_name = _field(body, "first_name", str, required=False)
        try:
            if first_name is None:  # one's own contact, as a request_contact button sends it
                sent = await user.sim.share_contact(phone)
            else:
                sent = await user.sim.send_contact(
                    phone, first_name, _field(body, "last_name", str, required=False)
                )
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, sent))

    async def send_sticker(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        emoji = _field(body, "emoji", str, required=False) or "👍"
        return _json(self._message(user, await user.sim.send_sticker(emoji)))

    async def send_dice(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        try:
            sent = await user.sim.send_dice(_field(body, "emoji", str, required=False) or "🎲")
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, sent))

    async def send_poll(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        options = _field(body, "options", list)
        if not all(isinstance(o, str) and o for o in options):
            raise SandboxError("options must be a list of strings")
        try:
            sent = await user.sim.send_poll(
                _field(body, "question", str),
                options,
                is_anonymous=bool(body.get("is_anonymous", True)),
                allows_multiple_answers=bool(body.get("allows_multiple_answers", False)),
            )
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, sent))

    async def vote(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        message = self._stored(user, body)
        options = _field(body, "options", list)
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in options):
            raise SandboxError("options must be a list of option indexes")
        try:
            await user.sim.vote(message, options)
        except LookupError as error:
            raise SandboxError(str(error), 404) from None
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json({"ok": True})

    async def edit(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        message = self._stored(user, body)
        try:
            edited = await user.sim.edit_text(message, _field(body, "text", str))
        except LookupError as error:
            raise SandboxError(str(error)) from None
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return _json(self._message(user, edited))

    async def press(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        message = self._stored(user, body)
        label = _field(body, "button", str)
        try:
            query_id = await user.sim.press(label, message)
        except LookupError as error:
            raise SandboxError(str(error), 404) from None
        except ValueError as error:
            raise SandboxError(str(error)) from None
        try:
            answer = await user.sim.wait_callback_answer(query_id, CALLBACK_ANSWER_TIMEOUT)
        except TimeoutError:
            return _json({"answer": None, "answered": False})
        return _json(
            {
                "answer": {"text": answer.text, "show_alert": answer.show_alert, "url": answer.url},
                "answered": True,
            }
        )

    async def pay(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        url = _field(body, "url", str, required=False)
        message_id = None if url is not None else _field(body, "message_id", int)
        return _json(await self.sandbox.pay(user.id, message_id, url))

    async def subscriptions(self, request: web.Request) -> web.Response:
        return _json(self.sandbox.subscriptions(self._user(request).id))

    async def change_subscription(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await _body(request)
        action = _field(body, "action", str)
        charge_id = request.match_info["charge_id"]
        return _json(await self.sandbox.change_subscription(user.id, charge_id, action))

    # -- files, calls, commands -------------------------------------------------------------------

    async def file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        record = self.sandbox.emulator.state.files.get(file_id)
        if record is None:
            raise SandboxError(f"no file {file_id}", 404)
        content_type = _sniff(record.data) or record.mime_type
        if content_type is None:
            content_type = (
                mimetypes.guess_type(record.file_name or "")[0] or "application/octet-stream"
            )
        headers = {"Cache-Control": "max-age=86400"}
        if record.file_name:
            safe = record.file_name.replace('"', "").replace("\\", "").replace("\n", "")
            headers["Content-Disposition"] = f'inline; filename="{safe}"'
        return web.Response(body=record.data, content_type=content_type, headers=headers)

    async def calls(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
            limit = int(request.query.get("limit", str(CALLS_LIMIT)))
        except ValueError:
            raise SandboxError("after and limit must be integers") from None
        method = request.query.get("method")
        requests = self.sandbox.emulator.requests
        start = max(0, after)
        selected = [
            call_json(index + 1, requests[index])
            for index in range(start, len(requests))
            if method is None or requests[index].method == method
        ]
        return _json(selected[-max(1, min(limit, 5000)) :])

    async def commands(self, request: web.Request) -> web.Response:
        language = request.query.get("language") or None
        user_id: int | None = None
        if request.query.get("user_id"):
            try:
                user_id = int(request.query["user_id"])
            except ValueError:
                raise SandboxError("user_id must be an integer") from None
        return _json(self.sandbox.commands(language, user_id))

    # -- control ----------------------------------------------------------------------------------

    async def restart(self, request: web.Request) -> web.Response:
        await self.sandbox.restart_bot()
        return _json(self.sandbox.state_json())

    async def flood(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.sandbox.set_flood(_field(body, "enabled", bool))
        return _json({"enabled": self.sandbox.flood_enabled})

    async def clock(self, request: web.Request) -> web.Response:
        return _error(
            "time travel is not there yet: the emulator has no clock of its own "
            "(subscriptions cannot be renewed by moving time forward)",
            501,
        )

    async def providers(self, request: web.Request) -> web.Response:
        from lumigram.fakes.base import Fault

        return _json(
            {
                "fake": sorted(self.sandbox.fakes.servers),
                "faults": [fault.value for fault in Fault],
                "queued": {
                    name: [fault.value for fault in server.faults]
                    for name, server in self.sandbox.fakes.servers.items()
                },
            }
        )

    async def provider_fault(self, request: web.Request) -> web.Response:
        from lumigram.fakes.base import Fault

        server = self.sandbox.fakes.servers.get(request.match_info["name"])
        if server is None:
            raise SandboxError(
                f"no fake provider {request.match_info['name']!r} (start with --fake-providers)",
                404,
            )
        body = await _body(request)
        try:
            fault = Fault(_field(body, "fault", str))
        except ValueError:
            known = ", ".join(f.value for f in Fault)
            raise SandboxError(f"fault must be one of: {known}") from None
        times = _field(body, "times", int, required=False) or 1
        server.inject(*[fault] * max(1, min(times, 100)))
        return _json({"queued": [f.value for f in server.faults]})

    async def not_found(self, request: web.Request) -> web.Response:
        return _error(f"no such endpoint: {request.method} {request.path}", 404)

    # -- events -----------------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.hub.subscribe()
        try:
            state = _dumps(self.sandbox.state_json())
            await response.write(f"retry: 1000\nevent: state\ndata: {state}\n\n".encode())
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    frame = ": heartbeat\n\n"
                if frame is None:
                    break
                await response.write(frame.encode())
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            self.hub.unsubscribe(queue)
        return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SandboxError as error:
        return _error(str(error), error.status)
    except web.HTTPException as error:
        if request.path.startswith("/api/"):
            return _error(error.text or error.reason, error.status)
        raise
