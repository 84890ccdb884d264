"""The HTTP side: an aiohttp application speaking the Bot API like api.telegram.org.

Routes: ``/bot<token>/<method>`` (GET or POST; parameters from the query string and
from urlencoded, JSON or multipart bodies) and ``/file/bot<token>/<file_path>``.
Every request is recorded; error answers also go to :attr:`BotApiServer.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import hdrs, web

from . import (
    methods_content,
    methods_core,
    methods_messages,
    methods_payments,
    methods_polls,
    polls,
)
from .calls import Answer, Call, Handler
from .errors import ApiError, bad_request, entity_too_large, not_found, unauthorized
from .media import MediaResolver
from .spec import Upload
from .state import BotState, EmulatorState
from .updates import WebhookPusher

log = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {
    **methods_core.HANDLERS,
    **methods_messages.HANDLERS,
    **methods_payments.HANDLERS,
    **methods_content.HANDLERS,
    **methods_polls.HANDLERS,
}
# Rewrites of the raw parameters before validation (older forms the server still reads).
PREPARE: dict[str, Callable[[Mapping[str, Any]], Mapping[str, Any]]] = {
    **methods_polls.PREPARE,
}
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_MAX_BODY = 64 * 1024 * 1024  # above the 50 MB upload limit, so that it can be reported


@dataclass
class RecordedRequest:
    """One Bot API call as the emulator saw it."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    bot_id: int | None = None
    via: str = "http"
    at: float = field(default_factory=time.time)

    @property
    def description(self) -> str:
        return str(self.response.get("description", ""))

    def __str__(self) -> str:
        outcome = "ok" if self.status == 200 else f"{self.status} {self.description}"
        return f"{self.method}({_short(self.params)}) -> {outcome}"


def _short(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) <= 300 else text[:297] + "..."


def _loggable(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters for the log: JSON text decoded, uploads summarised."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        elif isinstance(value, Upload):
            value = repr(value)  # do not keep the bytes of every upload alive
        out[key] = value
    return out


class BotApiServer:
    def __init__(
        self,
        state: EmulatorState,
        *,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0),
    ) -> None:
        self.state = state
        self.requests: list[RecordedRequest] = []
        self.errors: list[RecordedRequest] = []
        self.webhook_retry_delays = webhook_retry_delays
        self._session: aiohttp.ClientSession | None = None
        self.media = MediaResolver(state.files, self.session)
        self._runner: web.AppRunner | None = None
        self._pushers: dict[int, asyncio.Task[None]] = {}
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The client session used to fetch URLs and to call webhooks."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/bot{token}/{method}", self.handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self.handle_file)
        app.router.add_route("*", "/{tail:.*}", self.handle_unknown)
        return app

    async def start(self, host: str, port: int) -> str:
        # Cancel handlers whose client went away (an abandoned long poll must not linger)
        # and do not wait long for open connections on shutdown.
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        actual_port = self._runner.addresses[0][1] if self._runner.addresses else port
        self.base_url = f"http://{host}:{actual_port}"
        return self.base_url

    async def stop(self) -> None:
        for bot in list(self.state.bots_by_id.values()):
            self.stop_webhook(bot)
            bot.updates.close()
            polls.cancel_timers(bot)
        tasks = list(self._pushers.values())
        self._pushers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- webhooks --------------------------------------------------------------------------

    def start_webhook(self, bot: BotState) -> None:
        if bot.webhook is None:
            return
        pusher = WebhookPusher(
            bot.token,
            bot.updates,
            bot.webhook,
            self.session(),
            self._webhook_reply,
            self.webhook_retry_delays,
        )
        self._pushers[bot.id] = asyncio.get_running_loop().create_task(pusher.run())

    def stop_webhook(self, bot: BotState) -> None:
        task = self._pushers.pop(bot.id, None)
        if task is not None:
            task.cancel()

    async def _webhook_reply(self, token: str, body: bytes, content_type: str) -> None:
        """A webhook may answer with a method call, which Telegram then executes."""
        if "json" not in content_type:
            return
        payload = json.loads(body)
        if not isinstance(payload, dict) or "method" not in payload:
            return
        params = {k: v for k, v in payload.items() if k != "method"}
        await self.execute(token, str(payload["method"]), params, via="webhook_reply")

    # -- HTTP handlers ---------------------------------------------------------------------

    async def handle_unknown(self, request: web.Request) -> web.Response:
        return self._respond(not_found().payload(), 404)

    async def handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        try:
            raw = await _read_params(request)
        except ApiError as error:
            return self._respond(error.payload(), error.code)
        response, status = await self.execute(token, method, raw)
        return self._respond(response, status)

    async def handle_file(self, request: web.Request) -> web.Response:
        bot = self.state.bots_by_token.get(request.match_info["token"])
        record = self.state.files.by_path(request.match_info["path"])
        if bot is None:
            return self._respond(unauthorized().payload(), 401)
        if record is None:
            return self._respond(not_found().payload(), 404)
        fault = self.state.files.take_fault(record.file_id, "download")
        if fault is not None and fault.drop:
            # A network failure: the connection goes away without an answer.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault is not None:
            return self._respond(ApiError(fault.code, fault.description).payload(), fault.code)
        return web.Response(
            body=record.data, content_type=record.mime_type or "application/octet-stream"
        )

    @staticmethod
    def _respond(payload: dict[str, Any], status: int) -> web.Response:
        return web.json_response(payload, status=status, dumps=_dumps)

    async def execute(
        self, token: str, method: str, raw: Mapping[str, Any], *, via: str = "http"
    ) -> tuple[dict[str, Any], int]:
        """Run one Bot API call; returns the answer body and HTTP status, recorded."""
        bot = self.state.bots_by_token.get(token) if _TOKEN_RE.match(token) else None
        canonical = self.state.spec.canonical_method(method)
        try:
            if not _TOKEN_RE.match(token):
                raise not_found()
            if bot is None:
                raise unauthorized()
            if canonical is None:
                raise not_found()
            handler = HANDLERS.get(canonical)
            if handler is None:
                raise ApiError(
                    501, f"Not Implemented: the emulator does not support {canonical} yet"
                )
            prepare = PREPARE.get(canonical)
            given = prepare(raw) if prepare is not None else raw
            params = self.state.spec.validate(canonical, given)
            result = await handler(Call(self, bot, canonical, params, given))
        except ApiError as error:
            response, status = error.payload(), error.code
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("emulator failure in %s", canonical or method)
            response = {
                "ok": False,
                "error_code": 500,
                "description": f"Internal Server Error: {type(exc).__name__}: {exc}",
            }
            status = 500
        else:
            if isinstance(result, Answer):
                response = {"ok": True, "result": result.result, "description": result.description}
            else:
                response = {"ok": True, "result": result}
            status = 200
        record = RecordedRequest(
            method=canonical or method,
            params=_loggable(raw),
            status=status,
            response=response,
            bot_id=bot.id if bot is not None else None,
            via=via,
        )
        self.requests.append(record)
        if status >= 400:
            self.errors.append(record)
        return response, status


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return params
    content_type = request.content_type
    try:
        if content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("can't parse parameters JSON object")
            params.update(body)
        elif content_type == "multipart/form-data":
            params.update(await _read_multipart(request))
        elif content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    except web.HTTPRequestEntityTooLarge:
        raise entity_too_large() from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("can't parse request body") from None
    return params


async def _read_multipart(request: web.Request) -> dict[str, Any]:
    """Read a multipart body without blocking; files become :class:`Upload`."""
    params: dict[str, Any] = {}
    reader = await request.multipart()
    total = 0
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        chunks: list[bytes] = []
        while chunk := await part.read_chunk(256 * 1024):
            total += len(chunk)
            if total > _MAX_BODY:
                raise entity_too_large()
            chunks.append(chunk)
        data = b"".join(chunks)
        if part.filename is not None:
            params[part.name] = Upload(part.filename, data, part.headers.get(hdrs.CONTENT_TYPE))
        else:
            params[part.name] = data.decode(part.get_charset(default="utf-8"))
    return params
