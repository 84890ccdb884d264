"""Memory and event-loop lag of the bot with 1,000 generation jobs in flight at once.

What runs: the real bot (``lumigram.runtime.BotApplication``) against the Telegram
Bot API emulator (flood control off, per-user throttling relaxed to 50/s) and the
fake Replicate server (``lumigram.fakes.replicate.FakeReplicate``: every prediction
takes ``--run-seconds``, 30 s by default), both on 127.0.0.1. The bot gets
``replicate_api_token`` and ``replicate_base_url``, so the real Replicate client
(``lumigram.providers.replicate``) is used, and raised ``worker_concurrency`` and
``provider_concurrency`` (256 each by default; a submit holds its worker and its
provider slot for up to 5 s because of ``Prefer: wait=5``). By default the bot runs
in its own process (``bench/botproc.py``), the emulator, the fake and the users run
here; ``--in-process`` puts the bot in this process too (numbers then include them).

How: 1,000 simulated users each walk through /generate -> "FLUX 1.1 [pro]" (catalog
id ``flux-1.1-pro``, Replicate model ``black-forest-labs/flux-1.1-pro``) ->
"Custom prompt" -> prompt to the summary screen (phase "prepare"). Then all of
them press "Generate" in one burst (``--press-rate`` paces the presses instead).
Phases from then on: "submit" until the fake holds a prediction for every job,
"inflight" until the first result reaches a chat, "deliver" until every job is
delivered or ``--give-up`` seconds have passed (what was delivered is reported).
Inside the bot process a task sleeps 0.1 s over and over; each overshoot is one
loop-lag sample, and the resident set size is read with it; ``ru_maxrss`` gives the
peak over the process's life.

    .venv/bin/python bench/inflight_memory.py [--jobs 1000] [--run-seconds 30]
        [--worker-concurrency 256] [--provider-concurrency 256] [--give-up 120]
        [--press-rate 0] [--database-url postgresql+asyncpg://...] [--in-process]
        [--breakdown] [--profile FILE] [--tracemalloc FRAMES] [--bot-log FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import (
    DeliveryWatch,
    DriverProbe,
    log_summary,
    make_bot,
    mb,
    open_summaries,
    phase_cpu,
    phase_gc,
    phase_lags,
    phase_max_rss,
    print_breakdown,
    print_profile,
    print_table,
    scratch_database,
    spread,
)

from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.fakes.replicate import FakeReplicate

FIRST_USER_ID = 700_000
REPLICATE_KEY = "r8_bench_local_fake_key"
MODEL_LABEL = "FLUX 1.1 [pro]"  # catalog id flux-1.1-pro
MODE_LABEL = "Custom prompt"
STEP_TIMEOUT = 120.0  # seconds a simulated user waits for one answer of the bot
LOAD_PHASES = ("submit", "inflight", "deliver")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="users, one job each")
    parser.add_argument("--run-seconds", type=float, default=30.0, help="fake prediction time")
    parser.add_argument("--worker-concurrency", type=int, default=256)
    parser.add_argument("--provider-concurrency", type=int, default=256)
    parser.add_argument("--give-up", type=float, default=120.0, help="seconds after the presses")
    parser.add_argument(
        "--press-rate", type=float, default=0.0, help="presses per second (0: all at once)"
    )
    parser.add_argument("--prepare-concurrency", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to use")
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (to a file)")
    parser.add_argument("--bot-log", default=None, help="keep the bot's log in this file")
    parser.add_argument("--in-process", action="store_true", help="run the bot in this process")
    parser.add_argument("--breakdown", action="store_true", help="time the bot's internals")
    parser.add_argument("--profile", default=None, help="cProfile the bot into this file")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace Python allocations"
    )
    parser.add_argument(
        "--snapshot-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --tracemalloc: list the largest allocations this long after the first "
        "press (default: when all jobs are at the provider or the first result is out)",
    )
    return parser.parse_args()


def bot_settings(
    args: argparse.Namespace,
    emulator: TelegramEmulator,
    fake: FakeReplicate,
    token: str,
    tmp: Path,
    database: str,
) -> dict[str, Any]:
    return {
        "bot_token": token,
        "telegram_api_base": emulator.base_url,
        "database_url": database,
        "storage_dir": str(tmp / "files"),
        "log_level": args.log_level,
        "replicate_api_token": REPLICATE_KEY,
        "replicate_base_url": fake.base_url,
        "throttle_rate": 50.0,
        "throttle_burst": 50,
        "worker_concurrency": args.worker_concurrency,
        "provider_concurrency": args.provider_concurrency,
    }


class FlightMonitor:
    """Every 0.25 s: counts predictions at the fake and results in the chats, moves the
    phases on (here and in the bot), and keeps the maxima."""

    def __init__(
        self, fake: FakeReplicate, watches: list[DeliveryWatch], bot: Any, driver: DriverProbe
    ) -> None:
        self.fake = fake
        self.watches = watches
        self.bot = bot
        self.driver = driver
        self.phase = ""
        self.started = time.perf_counter()
        self.max_running = 0  # predictions running at the fake at the same time
        self.max_in_flight = 0  # jobs confirmed and not yet delivered
        self.all_submitted_after: float | None = None
        self.first_delivery_after: float | None = None
        self.snapshot_after: float | None = None  # --tracemalloc
        self.snapshot: list[str] = []
        self.want_snapshot = False

    async def enter(self, phase: str) -> None:
        self.phase = phase
        self.driver.enter(phase)
        await self.bot.call("phase", name=phase)

    async def take_snapshot(self) -> None:
        if self.want_snapshot and not self.snapshot:
            self.snapshot = (await self.bot.call("tracemalloc_top", limit=15))["top"]

    async def run(self, deadline: float) -> int:
        """Until every job is delivered or ``deadline``; returns how many were delivered."""
        total = len(self.watches)
        while True:
            pressed = sum(1 for watch in self.watches if watch.pressed_at is not None)
            delivered = sum(1 for watch in self.watches if watch.document_at is not None)
            predictions = list(self.fake.predictions.values())
            running = sum(1 for p in predictions if p.status() not in TERMINAL)
            self.max_running = max(self.max_running, running)
            self.max_in_flight = max(self.max_in_flight, pressed - delivered)
            elapsed = time.perf_counter() - self.started
            if self.snapshot_after is not None and elapsed >= self.snapshot_after:
                await self.take_snapshot()
            if self.phase == "submit" and len(predictions) >= total:
                self.all_submitted_after = elapsed
                await self.enter("inflight")
                if self.snapshot_after is None:
                    await self.take_snapshot()
            if self.phase in ("submit", "inflight") and delivered > 0:
                self.first_delivery_after = elapsed
                await self.enter("deliver")
                if self.snapshot_after is None:
                    await self.take_snapshot()
            if delivered >= total or time.perf_counter() >= deadline:
                return delivered
            await asyncio.sleep(0.25)


async def measure(
    args: argparse.Namespace,
    emulator: TelegramEmulator,
    fake: FakeReplicate,
    bot: Any,
    driver: DriverProbe,
) -> tuple[FlightMonitor, list[DeliveryWatch], dict[str, float]]:
    users = [
        emulator.user(user_id=FIRST_USER_ID + i, first_name=f"User{i}") for i in range(args.jobs)
    ]
    watches = [DeliveryWatch(user) for user in users]
    monitor = FlightMonitor(fake, watches, bot, driver)
    monitor.want_snapshot = bool(args.tracemalloc)
    monitor.snapshot_after = args.snapshot_after

    await monitor.enter("prepare")
    started = time.perf_counter()
    summaries = await open_summaries(
        users,
        MODEL_LABEL,
        MODE_LABEL,
        STEP_TIMEOUT,
        concurrency=args.prepare_concurrency,
        prompt=lambda user: f"a lighthouse in a storm, picture {user.id}",
    )
    await asyncio.sleep(0.5)  # the bot deletes the previous screen after the summary
    timings = {"prepare": time.perf_counter() - started}

    await monitor.enter("submit")
    monitor.started = time.perf_counter()
    pacing = args.jobs / args.press_rate if args.press_rate > 0 else 0.0
    monitoring = asyncio.create_task(monitor.run(monitor.started + pacing + args.give_up))
    for number, (user, watch, summary) in enumerate(zip(users, watches, summaries, strict=True)):
        if args.press_rate > 0:
            due = monitor.started + number / args.press_rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        watch.arm()
        await user.press("Generate", message=summary)
    timings["presses"] = time.perf_counter() - monitor.started
    timings["delivered"] = await monitoring
    timings["finished_after"] = time.perf_counter() - monitor.started
    await monitor.enter("after")
    return monitor, watches, timings


def report(
    args: argparse.Namespace,
    monitor: FlightMonitor,
    watches: list[DeliveryWatch],
    timings: dict[str, float],
    bot: Any,
    ready: dict[str, Any],
    bot_report: dict[str, Any],
    driver_report: dict[str, Any],
    database: str,
    emulator: TelegramEmulator,
    fake: FakeReplicate,
) -> None:
    delivered = int(timings["delivered"])
    latencies = [w.confirm_to_document_ms for w in watches if w.confirm_to_document_ms is not None]
    requests = Counter(request_kind(r.method, r.path) for r in fake.requests)
    pacing = f"paced at {args.press_rate:g}/s" if args.press_rate > 0 else "one burst"
    outcome = (
        f"{delivered} of {args.jobs} in {timings['finished_after']:.1f} s after the first press"
    )
    if delivered < args.jobs:
        outcome += f" (gave up: --give-up {args.give_up:g})"
    warnings, errors, first_errors = log_summary(bot.log_path)
    rows = [
        ("setup", f"{args.jobs} users x 1 job, bot {bot.where}"),
        ("database", database),
        ("provider", f"FakeReplicate on 127.0.0.1, run_seconds={args.run_seconds:g}"),
        ("model", f"{MODEL_LABEL} (flux-1.1-pro), mode {MODE_LABEL}"),
        (
            "bot settings",
            f"worker_concurrency={args.worker_concurrency}, "
            f"provider_concurrency={args.provider_concurrency}, "
            f"throttle 50/s burst 50, log_level={args.log_level}",
        ),
        ("conversations to summary", f"{timings['prepare']:.1f} s (phase prepare)"),
        ("confirm presses", f"{timings['presses']:.2f} s for {args.jobs} presses ({pacing})"),
        ("all jobs at the provider", after(monitor.all_submitted_after)),
        ("max jobs in flight", f"{monitor.max_in_flight} (confirmed, not yet delivered)"),
        ("max predictions running", f"{monitor.max_running} at once (at the fake)"),
        ("first result delivered", after(monitor.first_delivery_after)),
        ("delivered", outcome),
        ("confirm -> delivered", spread(latencies)),
        ("requests to the fake", ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))),
        ("bot peak RSS (ru_maxrss)", f"{mb(bot_report['peak_rss'])} over the process lifetime"),
        ("bot RSS after start-up", mb(ready.get("rss"))),
    ]
    for phase in ("prepare", *LOAD_PHASES):
        samples = bot_report["phases"].get(phase)
        if samples is None:
            continue
        rows += [
            (f"[{phase}] bot max RSS", mb(phase_max_rss(bot_report, phase))),
            (f"[{phase}] bot loop lag", spread(phase_lags(bot_report, phase))),
            (f"[{phase}] bot CPU", phase_cpu(bot_report, phase)),
            (f"[{phase}] bot GC pauses", phase_gc(bot_report, phase)),
        ]
        if samples.get("tracemalloc_peak"):
            traced = mb(samples["tracemalloc_peak"])
            rows.append((f"[{phase}] tracemalloc peak", f"{traced} (allocated since the burst)"))
        if not args.in_process:
            rows.append((f"[{phase}] driver loop lag", spread(phase_lags(driver_report, phase))))
    if not args.in_process:
        rows.append(("driver peak RSS", mb(driver_report["peak_rss"])))
    rows += [
        ("emulator errors", str(len(emulator.errors))),
        ("bot log", f"{warnings} warnings, {errors} errors"),
    ]
    print_table(f"Lumigram with {args.jobs} jobs in flight (memory, loop lag)", rows)
    for line in first_errors:
        print(f"  log: {line}")
    if monitor.snapshot:
        print("\nLargest live Python allocations made since the burst (tracemalloc):")
        print("\n".join(f"  {line}" for line in monitor.snapshot))
    print_breakdown(bot_report.get("breakdown"))
    if args.profile:
        print_profile(args.profile)


def after(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s after the first press"


def request_kind(method: str, path: str) -> str:
    if path.startswith("/files/"):
        return "downloads"
    if method == "GET":
        return "polls"
    return "cancels" if path.endswith("/cancel") else "creates"


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lumigram-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with scratch_database(args.database_url, tmp) as (database_url, database):
            fake = FakeReplicate(api_key=REPLICATE_KEY, run_seconds=args.run_seconds)
            await fake.start(host="127.0.0.1", port=0)
            emulator = TelegramEmulator(flood=FloodLimits.unlimited())
            await emulator.start(host="127.0.0.1", port=0)
            token = emulator.create_bot(username="lumigram_bot", first_name="Lumigram")
            config = {
                "settings": bot_settings(args, emulator, fake, token, tmp, database_url),
                "focus_phases": list(LOAD_PHASES),
                "profile_path": args.profile,
                "tracemalloc_frames": args.tracemalloc,
                "breakdown": args.breakdown,
                "log_path": args.bot_log,
            }
            bot = make_bot(config, tmp, in_process=args.in_process)
            driver = DriverProbe()
            try:
                ready = await bot.start()
                driver.start()
                monitor, watches, timings = await measure(args, emulator, fake, bot, driver)
                bot_report = await bot.stop()
                driver_report = await driver.stop()
            finally:
                await bot.kill()
                await emulator.stop()
                await fake.stop()
            report(
                args,
                monitor,
                watches,
                timings,
                bot,
                ready,
                bot_report,
                driver_report,
                database,
                emulator,
                fake,
            )
    return 0


def main() -> int:
    args = parse_args()
    if args.bot_log:
        args.bot_log = str(Path(args.bot_log).resolve())
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
