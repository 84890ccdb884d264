"""Confirm-to-delivered latency of image generation, 100 users pressing "Generate" at once.

What runs: the real bot (``lumigram.runtime.BotApplication``: long polling, the
in-process job queue and workers, SQLite in a temp dir or a scratch PostgreSQL
database) against the Telegram Bot API emulator (flood control off), with the
demo provider at zero latency (``demo_latency=0``, ``demo_image_size=256``: one
256x256 PNG per job). Per-user throttling is relaxed (50 updates/s, burst 50), as
in the e2e tests. By default the bot runs in its own process (``bench/botproc.py``)
and the emulator plus the simulated users run here, so the two do not share one
event loop or one core; ``--in-process`` puts the bot in this process instead,
exactly like ``tests/e2e``.

How: one warm-up generation first (not counted). Then, per round
(``--jobs-per-user`` rounds), every user walks through /generate -> "Demo" ->
"Custom prompt" -> prompt to the summary screen (not timed), and then all users
press "Generate" one right after the other (``--press-rate`` paces them instead).
For each job the clock starts right before the simulated press (the
callback_query update is queued in the emulator) and stops when the emulator
stores the result *document* (it follows the photo) in that user's chat. The stop
time is taken synchronously inside the emulator's handler of the bot's
sendDocument request (see ``harness.DeliveryWatch``), so the measurement adds no
polling or wake-up delay.

Prints p50/p95/p99/max confirm->photo and confirm->document, jobs per second over
the burst(s), the bot process's peak RSS (``ru_maxrss``), its event-loop lag, CPU
and garbage-collection pauses during the bursts.

    .venv/bin/python bench/generation_latency.py [--users 100] [--jobs-per-user 1]
        [--press-rate 0] [--image-size 256] [--database-url postgresql+asyncpg://...]
        [--worker-concurrency 8] [--provider-concurrency 8] [--in-process]
        [--breakdown] [--profile FILE] [--tracemalloc FRAMES] [--bot-log FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
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
    wait_until_no_active_jobs,
)

from lumigram.emulator import ChatMessage, FloodLimits, SimUser, TelegramEmulator

FIRST_USER_ID = 500_000
MODEL_LABEL = "Demo"  # the button "🧪 Demo (offline)"
MODE_LABEL = "Custom prompt"
STEP_TIMEOUT = 60.0  # seconds a simulated user waits for one answer of the bot
DELIVERY_TIMEOUT = 120.0  # seconds one round may take before it is given up


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--jobs-per-user", type=int, default=1, help="rounds of one job each")
    parser.add_argument(
        "--press-rate", type=float, default=0.0, help="presses per second (0: all at once)"
    )
    parser.add_argument("--image-size", type=int, default=256, help="demo_image_size (px)")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to use")
    parser.add_argument("--worker-concurrency", type=int, default=8)
    parser.add_argument("--provider-concurrency", type=int, default=8)
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (to a file)")
    parser.add_argument("--bot-log", default=None, help="keep the bot's log in this file")
    parser.add_argument("--in-process", action="store_true", help="run the bot in this process")
    parser.add_argument("--breakdown", action="store_true", help="time the bot's internals")
    parser.add_argument("--profile", default=None, help="cProfile the bot into this file")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace Python allocations"
    )
    return parser.parse_args()


def bot_settings(
    args: argparse.Namespace, emulator: TelegramEmulator, token: str, tmp: Path, database: str
) -> dict[str, Any]:
    return {
        "bot_token": token,
        "telegram_api_base": emulator.base_url,
        "database_url": database,
        "storage_dir": str(tmp / "files"),
        "log_level": args.log_level,
        "demo_latency": 0.0,
        "demo_image_size": args.image_size,
        "throttle_rate": 50.0,
        "throttle_burst": 50,
        "worker_concurrency": args.worker_concurrency,
        "provider_concurrency": args.provider_concurrency,
    }


@dataclass
class Results:
    warm_up_ms: float = 0.0
    prepare_seconds: float = 0.0
    burst_seconds: float = 0.0  # first press -> last delivery, summed over the rounds
    photo_ms: list[float] = field(default_factory=list)
    document_ms: list[float] = field(default_factory=list)
    wake_up_ms: list[float] = field(default_factory=list)
    undelivered: int = 0

    def add_round(self, watches: list[DeliveryWatch]) -> None:
        finished = [w for w in watches if w.document_at is not None]
        self.undelivered += len(watches) - len(finished)
        for watch in finished:
            assert watch.pressed_at is not None
            assert watch.document_at is not None
            self.document_ms.append((watch.document_at - watch.pressed_at) * 1000)
            if watch.photo_at is not None:
                self.photo_ms.append((watch.photo_at - watch.pressed_at) * 1000)
            if watch.woke_at is not None:
                self.wake_up_ms.append((watch.woke_at - watch.document_at) * 1000)
        pressed = [w.pressed_at for w in watches if w.pressed_at is not None]
        delivered = [w.document_at for w in finished if w.document_at is not None]
        if pressed and delivered:
            self.burst_seconds += max(delivered) - min(pressed)


async def warm_up(emulator: TelegramEmulator) -> float:
    """One generation by a separate user, so one-time costs are not in the figures."""
    user = emulator.user(user_id=FIRST_USER_ID - 1, first_name="Warm")
    watch = DeliveryWatch(user)
    [summary] = await open_summaries(
        [user], MODEL_LABEL, MODE_LABEL, STEP_TIMEOUT, 1, lambda _: "warm-up picture"
    )
    watch.arm()
    await user.press("Generate", message=summary)
    if not await watch.wait(DELIVERY_TIMEOUT):
        raise SystemExit("the warm-up generation was not delivered; see --bot-log")
    return watch.confirm_to_document_ms or 0.0


async def press_all(
    users: list[SimUser], watches: list[DeliveryWatch], summaries: list[ChatMessage], rate: float
) -> None:
    """Every user presses Generate: one right after the other, or ``rate`` a second."""
    started = time.perf_counter()
    for number, (user, watch, summary) in enumerate(zip(users, watches, summaries, strict=True)):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + number / rate - time.perf_counter()))
        watch.arm()
        await user.press("Generate", message=summary)
    await asyncio.gather(*(watch.wait(DELIVERY_TIMEOUT) for watch in watches))


async def enter(bot: Any, driver: DriverProbe, phase: str) -> None:
    driver.enter(phase)
    await bot.call("phase", name=phase)


async def measure(
    args: argparse.Namespace, emulator: TelegramEmulator, bot: Any, driver: DriverProbe
) -> Results:
    results = Results(warm_up_ms=await warm_up(emulator))
    users = [
        emulator.user(user_id=FIRST_USER_ID + i, first_name=f"User{i}") for i in range(args.users)
    ]
    watches = [DeliveryWatch(user) for user in users]
    for round_number in range(args.jobs_per_user):
        await enter(bot, driver, "prepare")
        started = time.perf_counter()
        left = await wait_until_no_active_jobs(bot, timeout=30)
        if left:
            print(f"warning: {left} job(s) of the previous round are still active")
        summaries = await open_summaries(
            users,
            MODEL_LABEL,
            MODE_LABEL,
            STEP_TIMEOUT,
            concurrency=len(users),
            prompt=lambda user, r=round_number: f"benchmark picture {user.id} round {r}",
        )
        await asyncio.sleep(0.2)  # the bot deletes the previous screen after the summary
        results.prepare_seconds += time.perf_counter() - started
        await enter(bot, driver, "burst")
        await press_all(users, watches, summaries, args.press_rate)
        await enter(bot, driver, "after")
        results.add_round(watches)
    return results


def report(
    args: argparse.Namespace,
    results: Results,
    bot: Any,
    ready: dict[str, Any],
    bot_report: dict[str, Any],
    driver_report: dict[str, Any],
    database: str,
    emulator: TelegramEmulator,
) -> None:
    jobs = len(results.document_ms)
    pacing = f"paced at {args.press_rate:g}/s" if args.press_rate else "all at once"
    throughput = (
        f"{jobs / results.burst_seconds:.1f} jobs/s ({jobs} jobs in {results.burst_seconds:.2f} s,"
        " first press -> last delivery)"
        if results.burst_seconds > 0
        else "n/a"
    )
    warnings, errors, first_errors = log_summary(bot.log_path)
    rows = [
        ("setup", f"{args.users} users x {args.jobs_per_user} job(s), presses {pacing}"),
        ("bot", bot.where),
        ("database", database),
        ("demo provider", f"demo_latency=0, demo_image_size={args.image_size} (1 PNG per job)"),
        (
            "bot settings",
            f"worker_concurrency={args.worker_concurrency}, "
            f"provider_concurrency={args.provider_concurrency}, "
            f"throttle 50/s burst 50, log_level={args.log_level}",
        ),
        ("warm-up job (not counted)", f"{results.warm_up_ms:.0f} ms"),
        ("conversations to summary", f"{results.prepare_seconds:.1f} s (not part of the latency)"),
        ("confirm -> photo", spread(results.photo_ms)),
        ("confirm -> document", spread(results.document_ms)),
        ("delivered", f"{jobs} of {jobs + results.undelivered} jobs"),
        ("throughput", throughput),
        ("bot peak RSS (ru_maxrss)", f"{mb(bot_report['peak_rss'])} over the process lifetime"),
        ("bot RSS after start-up", mb(ready.get("rss"))),
        ("bot max RSS during bursts", mb(phase_max_rss(bot_report, "burst"))),
        ("bot loop lag during bursts", spread(phase_lags(bot_report, "burst"))),
        ("bot CPU during bursts", phase_cpu(bot_report, "burst")),
        ("bot GC pauses during bursts", phase_gc(bot_report, "burst")),
    ]
    if bot_report.get("tracemalloc_peak") is not None:
        rows.append(("tracemalloc peak", f"{mb(bot_report['tracemalloc_peak'])} (since burst)"))
    if not args.in_process:
        rows += [
            ("driver loop lag, bursts", spread(phase_lags(driver_report, "burst"))),
            ("driver CPU during bursts", phase_cpu(driver_report, "burst")),
            ("driver peak RSS", mb(driver_report["peak_rss"])),
        ]
    median_wake = statistics.median(results.wake_up_ms) if results.wake_up_ms else 0.0
    rows += [
        ("observer wake-up delay", f"median {median_wake:.2f} ms (not in the figures above)"),
        ("emulator errors", str(len(emulator.errors))),
        ("bot log", f"{warnings} warnings, {errors} errors"),
    ]
    print_table("Lumigram generation latency (confirm -> delivered)", rows)
    for line in first_errors:
        print(f"  log: {line}")
    print_breakdown(bot_report.get("breakdown"))
    if args.profile:
        print_profile(args.profile)


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lumigram-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with scratch_database(args.database_url, tmp) as (database_url, database):
            emulator = TelegramEmulator(flood=FloodLimits.unlimited())
            await emulator.start(host="127.0.0.1", port=0)
            token = emulator.create_bot(username="lumigram_bot", first_name="Lumigram")
            config = {
                "settings": bot_settings(args, emulator, token, tmp, database_url),
                "focus_phases": ["burst"],
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
                results = await measure(args, emulator, bot, driver)
                bot_report = await bot.stop()
                driver_report = await driver.stop()
            finally:
                await bot.kill()
                await emulator.stop()
            report(args, results, bot, ready, bot_report, driver_report, database, emulator)
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
