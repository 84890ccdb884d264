"""Scale-out with real processes on PostgreSQL and Redis (docs/scale-out.md).

Two `lumigram bot` replicas in webhook mode behind a round-robin balancer (each
update goes to the other replica than the last), one `lumigram api`, three
`lumigram worker`s, all sharing Redis (job stream, conversation state, limits),
PostgreSQL and one files folder. 50 users make 200 jobs: through the bot (one from
the free trial, one paid by a Stars invoice) and through the API (two each). Mid-run
the worker that holds the sweeper lock is killed with SIGKILL and one bot replica is
restarted. At the end every job succeeded and every Telegram job was delivered
exactly once, each payment is recorded once, the Replicate fake never saw more than
PROVIDER_CONCURRENCY=2 requests at once from the three workers together, and the
books balance (checked by the ``database_url`` fixture, as ``lumigram ledger verify``).

The test needs PostgreSQL (several processes writing at once); it runs in CI's
second pass (LUMIGRAM_TEST_DATABASE_URL), as the rest of the suite does there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select

from lumigram.db import tables
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.fakes.replicate import FakeReplicate
from lumigram.services.api_keys import ApiKeyService
from tests.processes import start_lumigram

SECRET = "scale-secret_1"
KEY = "r8_TEST_scale_out_token_0123456789"
USERS = 50
MODEL_BUTTON = "FLUX 1.1 [pro]"
MODEL_ID = "flux-1.1-pro"
TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RoundRobin:
    """The load balancer in front of the bot replicas (Caddy or nginx in production):
    each webhook POST goes to the next replica; one that is down is skipped."""

    def __init__(self, targets: list[str]) -> None:
        self.targets = targets
        self.turn = 0
        self.served: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in {"content-type", "x-telegram-bot-api-secret-token"}
        }
        for _ in self.targets:
            target = self.targets[self.turn % len(self.targets)]
            self.turn += 1
            try:
                async with self._session.post(
                    f"{target}{request.path}", data=body, headers=headers
                ) as answer:
                    data = await answer.read()
                    if answer.status >= 500:
                        continue  # a replica shutting down: the next one
                    self.served[target] += 1
                    return web.Response(
                        body=data,
                        status=answer.status,
                        headers={"Content-Type": answer.headers.get("Content-Type", "text/plain")},
                    )
            except aiohttp.ClientError:
                continue
        return web.Response(status=502, text="no replica answered")


class Fleet:
    """The processes, each writing its log to a file (a pipe could fill and block it)."""

    def __init__(self, folder: Path, common: dict[str, str]) -> None:
        self.folder = folder
        self.common = common
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.logs: dict[str, Path] = {}
        self._files: list[BinaryIO] = []
        self.restarts: Counter[str] = Counter()

    async def start(self, name: str, role: str, **env: str) -> None:
        folder = self.folder / name
        folder.mkdir(exist_ok=True)
        log = folder / f"lumigram-{self.restarts[name]}.log"
        handle = open(log, "wb")  # noqa: SIM115, ASYNC230 (closed in close(); a local file)
        self._files.append(handle)
        self.logs[name] = log
        self.processes[name] = await start_lumigram(
            role, cwd=folder, env={**self.common, **env}, stdout=handle.fileno()
        )
        self.restarts[name] += 1

    def log(self, name: str) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted((self.folder / name).glob("*.log"))
        )

    async def wait_ready(self, name: str, port: int, timeout: float = 120) -> None:
        process = self.processes[name]
        async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(timeout):
            while True:
                assert process.returncode is None, f"{name} ended:\n{self.log(name)[-3000:]}"
                with contextlib.suppress(httpx.TransportError):
                    answer = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if answer.status_code == 200:
                        return
                await asyncio.sleep(0.3)

    async def stop(self, name: str) -> int:
        process = self.processes[name]
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(process.wait(), timeout=60)

    async def kill(self, name: str) -> None:
        process = self.processes[name]
        process.kill()
        await process.wait()

    async def close(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        for handle in self._files:
            handle.close()


async def bot_job(user: Any, prompt: str, *, pay: bool) -> None:
    """A generation through the bot: five updates, which the balancer spreads over both
    replicas, so the draft must live in the shared conversation state."""
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model", timeout=TIMEOUT)
    await user.press(MODEL_BUTTON)
    await user.wait_for_text("Now choose a mode", timeout=TIMEOUT)
    await user.press("Nature")
    await user.wait_for_text("Send me what to draw", timeout=TIMEOUT)
    await user.send_text(prompt)
    summary = await user.wait_for_text("Check your request", timeout=TIMEOUT)
    if pay:
        button = next(label for label in summary.flat_buttons if label.startswith("Pay "))
        await user.press(button, message=summary)
        await user.wait_for(lambda m: m.invoice is not None, timeout=TIMEOUT)
        paid = await user.pay(timeout=TIMEOUT)
        assert paid.ok, paid.error_message
    else:
        await user.press("Generate", message=summary)
    await user.wait_for(lambda m: m.kind == "photo" and prompt in (m.text or ""), timeout=TIMEOUT)


async def api_job(client: httpx.AsyncClient, prompt: str) -> int:
    for _ in range(50):
        answer = await client.post("/v1/generations", json={"model": MODEL_ID, "prompt": prompt})
        if answer.status_code == 429:  # the API's own rate limit: wait as told
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        if answer.status_code == 409:  # the bot job's photo is out, its final write not yet
            await asyncio.sleep(0.3)
            continue
        assert answer.status_code == 202, answer.text
        return int(answer.json()["id"])
    raise AssertionError("the API kept refusing")


async def test_replicas_and_workers_survive_a_kill_and_a_restart(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("runs on PostgreSQL: CI's second pass (LUMIGRAM_TEST_DATABASE_URL)")
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="scale_bot", first_name="Scale")
    fake = FakeReplicate(api_key=KEY, run_seconds=0.05, slow_seconds=0.3)
    await fake.start()
    ports = {name: free_port() for name in ("bot1", "bot2", "api", "w1", "w2", "w3")}
    balancer = RoundRobin([f"http://127.0.0.1:{ports[n]}" for n in ("bot1", "bot2")])
    await balancer.start()
    common = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_BASE": emulator.base_url,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_DIR": str(tmp_path / "files"),
        "HTTP_HOST": "127.0.0.1",
        "REPLICATE_API_TOKEN": KEY,
        "REPLICATE_BASE_URL": fake.base_url,
        "PROVIDER_CALLBACKS": "false",
        "PROVIDER_CONCURRENCY": "2",  # for the three workers together
        "FREE_TRIAL_IMAGES": "3",  # one bot job and two API jobs; the fourth is paid
        "LEASE_SECONDS": "5",
        "SWEEP_INTERVAL": "0.5",
        "SHUTDOWN_GRACE": "3",
        "THROTTLE_RATE": "50",
        "THROTTLE_BURST": "50",
        "API_RATE_LIMIT": "6000",
        "API_RATE_BURST": "200",
        "WORKER_CONCURRENCY": "16",
        # The emulator's flood control is off here (tests/bot/test_flood_limiter.py has
        # the shared limiter against it); the limiter stays on, with room to spare.
        "TELEGRAM_RATE_LIMIT": "1000",
        "TELEGRAM_CHAT_RATE_LIMIT": "50",
        "TELEGRAM_CHAT_BURST": "50",
        "LOG_LEVEL": "INFO",
    }
    bot_env = {
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": balancer.url,
        "WEBHOOK_SECRET": SECRET,
    }
    fleet = Fleet(tmp_path, common)
    map_entities()
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        for name in ("w1", "w2", "w3"):
            await fleet.start(name, "worker", HTTP_PORT=str(ports[name]))
        await fleet.start("api", "api", HTTP_PORT=str(ports["api"]))
        for name in ("bot1", "bot2"):
            await fleet.start(name, "bot", HTTP_PORT=str(ports[name]), **bot_env)
        for name in ports:
            await fleet.wait_ready(name, ports[name])

        users = [emulator.user(user_id=70_000 + i, first_name=f"U{i}") for i in range(USERS)]
        keys: dict[int, str] = {}
        for user in users:
            await user.send_text("/start")
        for user in users:
            await user.wait_for_text("Lumigram", timeout=TIMEOUT)
            async with sessions() as session:
                keys[user.id] = (
                    await ApiKeyService(ApiKeyRepository(session), session).create(user.id)
                ).plaintext

        api_jobs: list[int] = []
        gate = asyncio.Semaphore(10)  # users acting at once

        async def life(index: int, user: Any) -> None:
            headers = {"Authorization": f"Bearer {keys[user.id]}"}
            async with gate:
                await bot_job(user, f"first fox {index:03d}", pay=False)  # the free trial
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ports['api']}", headers=headers, timeout=30
            ) as client:
                for n in range(2):
                    job_id = await api_job(client, f"api fox {index}-{n}")
                    api_jobs.append(job_id)
                    # One at a time per user (MAX_ACTIVE_JOBS=1): wait for it to finish.
                    async with asyncio.timeout(TIMEOUT):
                        while True:
                            status = (await client.get(f"/v1/generations/{job_id}")).json()
                            if status["status"] in {"succeeded", "failed"}:
                                break
                            await asyncio.sleep(0.3)
            async with gate:
                await bot_job(user, f"paid fox {index:03d}", pay=True)

        lives = [asyncio.create_task(life(i, u)) for i, u in enumerate(users)]

        # Mid-run: kill the worker that runs the sweeper, restart a bot replica.
        async def delivered() -> int:
            async with sessions() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(tables.jobs)
                        .where(tables.jobs.c.status == "succeeded")
                    )
                    or 0
                )

        async with asyncio.timeout(300):
            while await delivered() < 60:
                assert not any(t.done() and t.exception() for t in lives)
                await asyncio.sleep(0.5)
        holder = next(n for n in ("w1", "w2", "w3") if "now runs the sweeper" in fleet.log(n))
        await fleet.kill(holder)
        killed_at = time.monotonic()
        assert await fleet.stop("bot1") == 0
        await fleet.start("bot1", "bot", HTTP_PORT=str(ports["bot1"]), **bot_env)
        # Another worker takes the sweeper over once the dead one's lock is gone.
        survivors = [n for n in ("w1", "w2", "w3") if n != holder]
        async with asyncio.timeout(60):
            while True:
                if any("now runs the sweeper" in fleet.log(n) for n in survivors):
                    break
                await asyncio.sleep(0.2)
        takeover = time.monotonic() - killed_at
        await fleet.wait_ready("bot1", ports["bot1"])

        await asyncio.wait_for(asyncio.gather(*lives), timeout=600)
        await asyncio.sleep(2)  # anything delivered twice would arrive by now

        # Every job succeeded; each Telegram job reached its chat exactly once.
        async with sessions() as session:
            statuses = Counter(
                (await session.execute(select(tables.jobs.c.status))).scalars().all()
            )
            paid = (
                await session.execute(
                    select(tables.payments.c.user_id, func.count()).group_by(
                        tables.payments.c.user_id
                    )
                )
            ).all()
        assert statuses == Counter({"succeeded": 4 * USERS}), statuses
        assert len(api_jobs) == 2 * USERS
        for index, user in enumerate(users):
            photos = [m.text or "" for m in user.bot_messages if m.kind == "photo"]
            assert len(photos) == 2, (user.id, photos)
            assert any(f"first fox {index:03d}" in text for text in photos)
            assert any(f"paid fox {index:03d}" in text for text in photos)
        assert sorted(count for _, count in paid) == [1] * USERS  # one payment each
        # The workers together kept to PROVIDER_CONCURRENCY.
        assert fake.max_in_flight <= 2, fake.max_in_flight
        assert fake.max_in_flight == 2
        # The balancer really alternated.
        assert min(balancer.served.values()) > 100, balancer.served
        # SIGTERM: every survivor stops cleanly within its grace.
        for name in ports:
            if name != holder:
                assert await fleet.stop(name) == 0, fleet.log(name)[-3000:]
        print(
            f"\nsweeper takeover after the kill: {takeover:.1f} s; "
            f"updates per replica: {dict(balancer.served)}"
        )
    finally:
        await fleet.close()
        await engine.dispose()
        await balancer.stop()
        await fake.stop()
        await emulator.stop()
    for name in ports:
        assert "Traceback" not in fleet.log(name), fleet.log(name)[-5000:]
