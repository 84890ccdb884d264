"""Shared machinery of the benchmarks: the bot (child process or in-process), the
scratch database, the simulated users' conversation, delivery timestamps, tables.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pstats
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from botproc import ANSWER_PREFIX, BotHost, Probe, peak_rss_bytes

from lumigram.emulator import ChatMessage, SimUser
from lumigram.emulator.updates import Notifier

BENCH_DIR = Path(__file__).resolve().parent
MB = 1024 * 1024


# --- numbers ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50):.1f}  p95 {percentile(values, 95):.1f}  "
        f"p99 {percentile(values, 99):.1f}  max {max(values):.1f} {unit}  (n={len(values)})"
    )


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MB:.1f} MB"


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


def print_profile(path: str, limit: int = 25) -> None:
    """The functions that used the most CPU themselves (tottime) while profiling was on."""
    stats = pstats.Stats(path, stream=sys.stdout)
    by_package: dict[str, float] = {}
    for (filename, _, _), row in stats.stats.items():  # type: ignore[attr-defined]
        package = _package_of(filename)
        by_package[package] = by_package.get(package, 0.0) + row[2]  # row[2]: own time
    total = sum(by_package.values())
    print(f"\ncProfile of the bot's main thread: own time by package ({total:.2f} s in all)")
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:15]:
        print(f"  {package:40s} {seconds:7.2f} s  {seconds / total:6.1%}")
    print(f"\nTop {limit} functions by own time (full stats: python -m pstats {path}):")
    stats.sort_stats("tottime").print_stats(limit)


def _package_of(filename: str) -> str:
    """'sqlalchemy', 'lumigram', 'asyncio', '<built-in>'... for a profiled function's file."""
    if filename.startswith("~") or filename.startswith("<"):
        return "<built-in / C functions>"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "lumigram" in parts:
        return "lumigram"
    if path.parent.name.startswith("python3"):
        return f"stdlib {path.stem}"
    return f"stdlib {path.parent.name}"


def print_breakdown(report: dict[str, Any] | None) -> None:
    """The ``--breakdown`` timings from the bot process (see bench/breakdown.py)."""
    if not report:
        return
    rows = []
    for label, values in sorted(report["timings"].items()):
        rows.append(
            f"  {label:58s} {len(values):6d} {sum(values) / 1000:8.2f}s "
            f"{percentile(values, 50):9.1f} {percentile(values, 99):9.1f} {max(values):9.1f}"
        )
    print("\nWhere the time goes inside the bot (wall-clock ms; nested items overlap):")
    print(f"  {'':58s} {'calls':>6s} {'total':>9s} {'p50':>9s} {'p99':>9s} {'max':>9s}")
    print("\n".join(rows))
    print(
        f"  db connections checked out: max {report['pool_checked_out_max']} "
        f"(pool_size {report['pool_size']}, max_overflow {report['pool_overflow']})"
    )
    cpu = ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in report["thread_cpu"].items())
    print(f"  CPU by thread: {cpu}")


# --- the database -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def scratch_database(url: str | None, tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """A fresh, empty database; yields (url, description). SQLite in ``tmp`` by default.

    With a PostgreSQL URL a scratch database ``<name>_bench_<random>`` is created on
    that server (the connecting role needs CREATEDB) and dropped afterwards.
    """
    if not url:
        yield f"sqlite+aiosqlite:///{tmp / 'bench.db'}", "SQLite (WAL, temp dir)"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from lumigram.db.engine import create_engine

    server = make_url(url)
    if server.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be postgresql+asyncpg://user:pass@127.0.0.1/db")
    name = f"{server.database}_bench_{secrets.token_hex(3)}"
    admin = create_engine(server.render_as_string(hide_password=False))
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        scratch = server.set(database=name)
        yield scratch.render_as_string(hide_password=False), f"PostgreSQL {name} (scratch)"
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


# --- the bot --------------------------------------------------------------------------------


class ChildBot:
    """The bot in its own process (``bench/botproc.py``); commands over a pipe."""

    where = "child process"

    def __init__(self, config: dict[str, Any], tmp: Path) -> None:
        self.config = config
        self.tmp = tmp
        self.log_path = config.get("log_path") or str(tmp / "bot.log")
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> dict[str, Any]:
        config_path = self.tmp / "bot-config.json"
        _write(config_path, json.dumps({**self.config, "log_path": self.log_path}))
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH_DIR / "botproc.py"),
            str(config_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # tracebacks of a crash show up in the benchmark's output
            cwd=self.tmp,
            limit=64 * MB,
        )
        return await self._read()

    async def call(self, command: str, **arguments: Any) -> dict[str, Any]:
        async with self._lock:
            assert self._process is not None
            assert self._process.stdin is not None
            line = json.dumps({"cmd": command, **arguments}) + "\n"
            self._process.stdin.write(line.encode())
            await self._process.stdin.drain()
            return await self._read()

    async def _read(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        while True:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout=120)
            if not line:
                await self._process.wait()
                raise RuntimeError(f"the bot process exited (code {self._process.returncode})")
            text = line.decode(errors="replace")
            if text.startswith(ANSWER_PREFIX):
                answer: dict[str, Any] = json.loads(text.removeprefix(ANSWER_PREFIX))
                return answer
            sys.stderr.write(f"[bot stdout] {text}")

    async def stop(self) -> dict[str, Any]:
        try:
            report = await self.call("stop")
            assert self._process is not None
            await asyncio.wait_for(self._process.wait(), timeout=30)
            return report
        finally:
            await self.kill()

    async def kill(self) -> None:
        """Make sure the child is gone (after an error in the benchmark)."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


class InProcessBot:
    """The bot in the benchmark's own process and event loop, like tests/e2e's BotRunner.

    Its memory and loop-lag numbers then include the emulator, the fake provider and
    the simulated users as well.
    """

    where = "in-process (same process and event loop as the emulator and the users)"

    def __init__(self, config: dict[str, Any], tmp: Path) -> None:
        self.log_path = config.get("log_path") or str(tmp / "bot.log")
        self.host = BotHost(
            config["settings"],
            profile_path=config.get("profile_path"),
            focus_phases=tuple(config.get("focus_phases", ())),
            tracemalloc_frames=int(config.get("tracemalloc_frames", 0)),
            log_path=self.log_path,
            breakdown=bool(config.get("breakdown")),
        )
        self._stopped = False

    async def start(self) -> dict[str, Any]:
        return await self.host.start()

    async def call(self, command: str, **arguments: Any) -> dict[str, Any]:
        return await self.host.handle({"cmd": command, **arguments})

    async def stop(self) -> dict[str, Any]:
        self._stopped = True
        return await self.host.stop()

    async def kill(self) -> None:
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(Exception):
                await self.host.stop()


Bot = ChildBot | InProcessBot


def make_bot(config: dict[str, Any], tmp: Path, *, in_process: bool) -> Bot:
    return InProcessBot(config, tmp) if in_process else ChildBot(config, tmp)


async def wait_until_no_active_jobs(bot: Bot, timeout: float) -> int:
    """Poll the jobs table until no job is queued or running; returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        active = int((await bot.call("active_jobs"))["active"])
        if active == 0 or time.monotonic() >= deadline:
            return active
        await asyncio.sleep(0.1)


def log_summary(path: str) -> tuple[int, int, list[str]]:
    """(warnings, errors, the first few error lines) from the bot's log file."""
    if not os.path.exists(path):
        return 0, 0, []
    warnings = errors = 0
    first: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if " WARNING " in line:
                warnings += 1
            elif " ERROR " in line or " CRITICAL " in line:
                errors += 1
                if len(first) < 5:
                    first.append(line.rstrip()[:300])
    return warnings, errors, first


# --- the simulated user --------------------------------------------------------------------


async def open_summary(
    user: SimUser, model_label: str, mode_label: str, prompt: str, timeout: float
) -> ChatMessage:
    """/generate -> model -> mode -> prompt; returns the summary with the Generate button."""
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model", timeout=timeout)
    await user.press(model_label)
    await user.wait_for_text("Now choose a mode", timeout=timeout)
    await user.press(mode_label)
    await user.wait_for_text("Send me what to draw", timeout=timeout)
    await user.send_text(prompt)
    return await user.wait_for_text("Check your request", timeout=timeout)


async def open_summaries(
    users: Sequence[SimUser],
    model_label: str,
    mode_label: str,
    timeout: float,
    concurrency: int,
    prompt: Callable[[SimUser], str],
) -> list[ChatMessage]:
    """Every user walks to the summary screen, at most ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(user: SimUser) -> ChatMessage:
        async with gate:
            return await open_summary(user, model_label, mode_label, prompt(user), timeout)

    return list(await asyncio.gather(*(one(user) for user in users)))


class DeliveryWatch:
    """When did the result appear in one user's chat?

    The watch replaces the chat's change notifier, which the emulator calls right
    after it stored a message (inside the handler of the bot's sendPhoto /
    sendDocument request). So ``photo_at`` / ``document_at`` are taken synchronously
    at the moment the message exists in the chat: no polling, no task wake-up in
    between. ``woke_at`` is when a coroutine waiting for the delivery actually ran
    again; the difference is what a ``wait_for``-style measurement would have added.
    """

    def __init__(self, user: SimUser) -> None:
        self.user = user
        self.chat = user.chat
        self.pressed_at: float | None = None
        self.photo_at: float | None = None
        self.document_at: float | None = None
        self.woke_at: float | None = None
        self.delivered = asyncio.Event()
        self._seen = len(self.chat.events)
        self.chat.changed = _CallbackNotifier(self._check)

    def arm(self) -> None:
        """Call right before pressing the confirm button."""
        self._seen = len(self.chat.events)
        self.photo_at = self.document_at = self.woke_at = None
        self.delivered.clear()
        self.pressed_at = time.perf_counter()

    def _check(self) -> None:
        events = self.chat.events
        while self._seen < len(events):
            event = events[self._seen]
            self._seen += 1
            if self.pressed_at is None or not event.from_bot or event.kind != "new":
                continue
            if "photo" in event.raw and self.photo_at is None:
                self.photo_at = time.perf_counter()
            elif "document" in event.raw and self.document_at is None:
                self.document_at = time.perf_counter()
                self.delivered.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.delivered.wait(), timeout)
        except TimeoutError:
            return False
        self.woke_at = time.perf_counter()
        return True

    @property
    def confirm_to_document_ms(self) -> float | None:
        if self.pressed_at is None or self.document_at is None:
            return None
        return (self.document_at - self.pressed_at) * 1000

    @property
    def confirm_to_photo_ms(self) -> float | None:
        if self.pressed_at is None or self.photo_at is None:
            return None
        return (self.photo_at - self.pressed_at) * 1000


class _CallbackNotifier(Notifier):
    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._on_change = on_change

    def notify(self) -> None:
        self._on_change()
        super().notify()


# --- this process -------------------------------------------------------------------------


class DriverProbe:
    """Loop lag of the benchmark's own process (emulator, fakes, simulated users): if
    this loop is saturated, latencies measured here are inflated by the load generator."""

    def __init__(self) -> None:
        self.probe = Probe()

    def start(self) -> None:
        self.probe.start()

    def enter(self, phase: str) -> None:
        self.probe.enter(phase)

    async def stop(self) -> dict[str, Any]:
        await self.probe.stop()
        return {"phases": self.probe.report(), "peak_rss": peak_rss_bytes()}


def phase_lags(report: dict[str, Any], phase: str) -> list[float]:
    return list(report["phases"].get(phase, {}).get("lags_ms", []))


def phase_cpu(report: dict[str, Any], phase: str) -> str:
    """CPU time of the process (all threads) in a phase, against its wall-clock time."""
    samples = report["phases"].get(phase)
    if not samples or not samples.get("seconds"):
        return "n/a"
    cpu, wall = samples["cpu_seconds"], samples["seconds"]
    return f"{cpu:.2f} s CPU in {wall:.2f} s = {cpu / wall:.0%} of one core"


def phase_gc(report: dict[str, Any], phase: str) -> str:
    """Garbage-collection pauses in a phase: the full (generation 2) ones matter."""
    pauses = report["phases"].get(phase, {}).get("gc_pauses_ms", {})
    full = pauses.get("2", [])
    young = [p for gen in ("0", "1") for p in pauses.get(gen, [])]
    text = f"{len(full)} full (gen 2)"
    if full:
        text += f", {max(full):.0f} ms max, {sum(full):.0f} ms in all"
    if young:
        text += f"; {len(young)} young, {sum(young):.0f} ms in all"
    return text


def phase_max_rss(report: dict[str, Any], phase: str) -> int | None:
    value = report["phases"].get(phase, {}).get("max_rss")
    return int(value) if value else None


def settings_summary(settings: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{key}={settings[key]}" for key in keys if key in settings)
