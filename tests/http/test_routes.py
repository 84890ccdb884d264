"""/healthz, /readyz and /metrics over real HTTP (uvicorn on a free port, httpx)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiogram import Bot, Dispatcher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from lumigram.config import Settings, load_settings
from lumigram.http import HttpServer, Metrics, create_app
from tests.http.conftest import HttpRunner

TOKEN = "123456789:" + "A" * 35


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus' text format (None: not there)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    selector = r"\{" + re.escape(wanted) + r"\}" if labels else ""
    pattern = "^" + re.escape(name) + selector + r" (\S+)$"
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_healthz_and_readyz_answer(runner: HttpRunner) -> None:
    client = await runner.start()
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "telegram": "ok", "bot": "ok"}
    assert (await client.post("/telegram/webhook", json={})).status_code == 404  # polling


async def test_metrics_are_named_and_count_updates(runner: HttpRunner) -> None:
    client = await runner.start()
    before = await client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    for name in (
        "lumigram_updates_total",
        "lumigram_handler_seconds",
        "lumigram_jobs",
        "lumigram_refunds_pending",
        "lumigram_payments_total",
    ):
        assert re.search(f"^# TYPE {name} (counter|histogram|gauge)$", before.text, re.M), name
    assert sample(before.text, "lumigram_jobs", status="queued") == 0
    assert sample(before.text, "lumigram_refunds_pending") == 0
    assert sample(before.text, "lumigram_payments_total") == 0
    assert sample(before.text, "lumigram_updates_total", type="message") is None

    user = runner.emulator.user(user_id=501, first_name="Mia", language_code="en")
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")
    await user.send_text("/help")
    await user.wait_for_text("How to use Lumigram")
    await asyncio.sleep(0.1)  # the handler returns after its answer arrives
    after = (await client.get("/metrics")).text
    assert sample(after, "lumigram_updates_total", type="message") == 2
    assert sample(after, "lumigram_handler_seconds_count", type="message") == 2
    assert (sample(after, "lumigram_handler_seconds_sum", type="message") or 0) > 0


@dataclass
class StubHost:
    """Just enough of the application for /readyz and /metrics."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot = field(default_factory=lambda: Bot(TOKEN))
    dispatcher: Dispatcher = field(default_factory=Dispatcher)
    metrics: Metrics = field(default_factory=Metrics)
    infra: Any = None  # the routes under test use no use case
    ready: dict[str, bool] = field(default_factory=lambda: {"telegram": True, "bot": True})

    @property
    def reader(self) -> async_sessionmaker[AsyncSession]:
        return self.sessionmaker

    def readiness(self) -> dict[str, bool]:
        return dict(self.ready)


async def test_readyz_is_503_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    engine = create_async_engine("postgresql+asyncpg://u:p@127.0.0.1:1/none")
    working = create_async_engine("sqlite+aiosqlite:///:memory:")
    host = StubHost(load_settings(bot_token=TOKEN), async_sessionmaker(engine))
    server = HttpServer(create_app(host, api=False), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["not_ready"] == ["database"]
            assert (await client.get("/healthz")).status_code == 200  # alive all the same
            metrics = await client.get("/metrics")  # the process's own metrics still come
            assert metrics.status_code == 200
            assert "# TYPE lumigram_updates_total counter" in metrics.text
            host.ready["bot"] = False
            host.sessionmaker = async_sessionmaker(working)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["not_ready"] == ["bot"]
    finally:
        await server.stop()
        await engine.dispose()
        await working.dispose()
        await host.bot.session.close()


async def test_a_busy_port_is_a_startup_error_naming_http_port() -> None:
    host = StubHost(load_settings(bot_token=TOKEN), None)  # type: ignore[arg-type]
    first = HttpServer(create_app(host), "127.0.0.1", 0)
    first.bind()
    try:
        second = HttpServer(first.app, "127.0.0.1", first.port)
        from lumigram.startup import StartupError

        try:
            second.bind()
        except StartupError as error:
            message = str(error)
        else:
            raise AssertionError("the second bind succeeded")
        assert "HTTP_PORT" in message
        assert "\n" not in message
    finally:
        await first.stop()
        await host.bot.session.close()
