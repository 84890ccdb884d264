"""Common machinery of the fake provider servers: auth, fault injection, rate limits.

Each fake is an aiohttp application on 127.0.0.1 that follows one provider's
documented request and response shapes; clients reach it by base URL only.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from aiohttp import web
from PIL import Image

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fault(StrEnum):
    """What the next request (of any route) should run into."""

    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503 with Retry-After
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After
    PAYMENT_REQUIRED = "payment_required"  # 402, out of credit
    UNAUTHORIZED = "unauthorized"  # 401, bad key
    HANG = "hang"  # never answers (until the server stops)
    SLOW = "slow"  # answers after `slow_seconds`
    MALFORMED = "malformed"  # 200 with a body that is not the documented shape


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RateLimit:
    """At most ``requests`` per ``per_seconds`` window; beyond that 429 with Retry-After."""

    requests: int
    per_seconds: float
    _stamps: deque[float] = field(default_factory=deque)

    def retry_after(self) -> float | None:
        now = time.monotonic()
        while self._stamps and now - self._stamps[0] >= self.per_seconds:
            self._stamps.popleft()
        if len(self._stamps) >= self.requests:
            return self.per_seconds - (now - self._stamps[0])
        self._stamps.append(now)
        return None


class FakeServer:
    """Base class: subclasses add routes in ``routes`` and build documented error bodies."""

    provider = "fake"

    def __init__(self, *, api_key: str = "test-key", slow_seconds: float = 2.0) -> None:
        self.api_key = api_key
        self.slow_seconds = slow_seconds
        self.faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []
        self.rate_limit: RateLimit | None = None
        self.retry_after_seconds = 1
        self.in_flight = 0
        self.max_in_flight = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # --- to override -------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def presented_key(self, request: web.Request) -> str | None:
        """The API key the request carries (default: ``Authorization: Bearer <key>``)."""
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None

    def error_response(self, status: int, message: str, **extra: Any) -> web.Response:
        """The provider's documented error body for ``status``."""
        return web.json_response({"error": message, **extra}, status=status)

    def malformed_response(self) -> web.Response:
        return web.Response(status=200, text="<html>not json</html>", content_type="text/html")

    # --- test API ----------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is consumed by one incoming request, in order."""
        self.faults.extend(faults)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ---------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), body)
        )
        if not request.path.startswith("/files/") and self.presented_key(request) != self.api_key:
            return self.error_response(401, "Unauthorized: invalid API key")
        if self.rate_limit is not None:
            wait = self.rate_limit.retry_after()
            if wait is not None:
                return self._with_retry_after(
                    self.error_response(429, "Rate limit exceeded"), max(1, round(wait))
                )
        if self.faults:
            fault = self.faults.popleft()
            response = await self._apply(fault)
            if response is not None:
                return response
        self.in_flight += 1  # requests being answered at once (a concurrency cap's test)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _apply(self, fault: Fault) -> web.StreamResponse | None:
        match fault:
            case Fault.SERVER_ERROR:
                return self.error_response(500, "Internal server error")
            case Fault.UNAVAILABLE:
                return self._with_retry_after(
                    self.error_response(503, "Service unavailable"), self.retry_after_seconds
                )
            case Fault.RATE_LIMIT:
                return self._with_retry_after(
                    self.error_response(429, "Rate limit exceeded"), self.retry_after_seconds
                )
            case Fault.PAYMENT_REQUIRED:
                return self.error_response(402, "Insufficient credit")
            case Fault.UNAUTHORIZED:
                return self.error_response(401, "Unauthorized: invalid API key")
            case Fault.HANG:
                await self._stopping.wait()
                return self.error_response(503, "Server stopping")
            case Fault.SLOW:
                await asyncio.sleep(self.slow_seconds)
                return None
            case Fault.MALFORMED:
                return self.malformed_response()
        return None

    @staticmethod
    def _with_retry_after(response: web.Response, seconds: int) -> web.Response:
        response.headers["Retry-After"] = str(seconds)
        return response


def sample_image(width: int = 64, height: int = 64, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A small real image (for fake results); cheap enough to call inline in a fake."""
    colour = ((seed * 67) % 256, (seed * 131) % 256, (seed * 197) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


class CallbackPoster:
    """A fake provider's callbacks, POSTed in the background as the provider would: one
    HTTP client made on first use, every task cancelled at ``close``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int | None:
        """The answer's status; None when the connection failed."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return None
        return response.status_code

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
