"""Confirm-to-delivered latency of image generation, 100 users pressing "Generate" at once.

What runs: the real bot (``lumigram.runtime.BotApplication``: long polling, the
in-process job queue and workers, SQLite in a temp dir or a scratch PostgreSQL
database) against the Telegram Bot API emulator (flood control off), with the
demo provider at zero latency. Per-user throttling is relaxed (50 updates/s,
burst 50) as in the e2e tests. By default the bot runs in its own process
(``bench/botproc.py``) and the emulator plus the simulated users run here, so
the two do not share one event loop or one core; ``--in-process`` puts the bot in
this process instead, exactly like ``tests/e2e``.

How: one warm-up generation first (not counted). Then, per round (``--jobs-per-user``
rounds), every user walks through /generate -> "Demo" -> "Custom prompt" -> prompt
to the summary screen (not timed), and then all users press "Generate" in one
burst. For each job the clock starts right before the simulated press (the
callback_query update is queued in the emulator) and stops when the emulator
stores the result *document* (the photo comes just before it) in that user's chat;
the stop time is taken synchronously inside the emulator's request handler (see
``harness.DeliveryWatch``), so the measurement adds no polling or wake-up delay.

Prints p50/p95/p99/max confirm->photo and confirm->document, jobs per second over
the burst(s), the bot process's peak RSS (``ru_maxrss``) and its event-loop lag.

    .venv/bin/python bench/generation_latency.py [--users 100] [--jobs-per-user 1]
        [--image-size 256] [--database-url postgresql+asyncpg://...] [--in-process]
        [--worker-concurrency 8] [--provider-concurrency 8] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    DeliveryWatch,
    DriverProbe,
    log_summary,
    make_bot,
    mb,
    open_summaries,
    phase_lags,
    phase_max_rss,
    print_profile,
    print_table,
    scratch_database,
    settings_summary,
    spread,
    wait_until_no_active_jobs,
)

from lumigram.emulator import FloodLimits, SimUser, TelegramEmulator

FIRST_USER_ID = 500_000
STEP_TIMEOUT = 60.0  # seconds a simulated user waits for one answer of the bot
DELIVERY_TIMEOUT = 120.0  # seconds a burst may take before it is given up


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--jobs-per-user", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=256, help="demo_image_size (px)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to use")
    parser.add_argument("--worker-concurrency", type=int, default=8)
    parser.add_argument("--provider-concurrency", type=int, default=8)
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (to a file)")
    parser.add_argument("--in-process", action="store_true", help="bot in this process")
    parser.add_argument("--profile", default=None, help="cProfile the bot during the bursts")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace Python allocations"
    )
    return parser.parse_args()


def bot_settings(args: argparse.Namespace, emulator: TelegramEmulator, token: str, tmp: Path,
                 database_url: str) -> dict[str, Any]:  # fmt: skip
    return {
        "bot_token": token,
        "telegram_api_base": emulator.base_url,
        "database_url": database_url,
        "storage_dir": str(tmp / "files"),
        "log_level": args.log_level,
        "demo_latency": 0.0,
        "demo_image_size": args.image_size,
        "throttle_rate": 50.0,
        "throttle_burst": 50,
        "worker_concurrency": args.worker_concurrency,
        "provider_concurrency": args.provider_concurrency,
    }


async def burst(users: list[SimUser], watches: list[DeliveryWatch], summaries: list[Any]) -> bool:
    """All users press Generate, one right after the other; True if all were delivered."""
    for user, watch, summary in zip(users, watches, summaries, strict=True):
        watch.arm()
        await user.press("Generate", message=summary)
    delivered = await asyncio.gather(*(watch.wait(DELIVERY_TIMEOUT) for watch in watches))
    return all(delivered)


async def warm_up(emulator: TelegramEmulator) -> float:
    """One generation by a separate user, so one-time costs are not in the figures."""
    user = emulator.user(user_id=FIRST_USER_ID - 1, first_name="Warm")
    watch = DeliveryWatch(user)
    [summary] = await open_summaries(
        [user], "Demo", "Custom prompt", STEP_TIMEOUT, 1, lambda u: "warm-up picture"
    )
    watch.arm()
    await user.press("Generate", message=summary)
    if not await watch.wait(DELIVERY_TIMEOUT):
        raise SystemExit("the warm-up generation was not delivered; see the bot log")
    return watch.confirm_to_document_ms or 0.0


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lumigram-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with scratch_database(args.database_url, tmp) as (database_url, database_name):
            emulator = TelegramEmulator(flood=FloodLimits.unlimited())
            await emulator.start(host="127.0.0.1", port=0)
            token = emulator.create_bot(username="lumigram_bot", first_name="Lumigram")
            settings = bot_settings(args, emulator, token, tmp, database_url)
            config = {
                "settings": settings,
                "profile_path": args.profile,
                "profile_phases": ["burst"],
                "tracemalloc_frames": args.tracemalloc,
            }
            bot = make_bot(config, tmp, in_process=args.in_process)
            driver = DriverProbe()
            try:
                ready = await bot.start()
                driver.start()
                return await measure(args, emulator, bot, driver, ready, settings, database_name)
            finally:
                await bot.kill()
                await emulator.stop()


async def measure(args: argparse.Namespace, emulator: TelegramEmulator, bot: Any,
                  driver: DriverProbe, ready: dict[str, Any], settings: dict[str, Any],
                  database_name: str) -> int:  # fmt: skip
    warm_ms = await warm_up(emulator)
    users = [
        emulator.user(user_id=FIRST_USER_ID + i, first_name=f"User{i}") for i in range(args.users)
    ]
    watches = [DeliveryWatch(user) for user in users]
    document_ms: list[float] = []
    photo_ms: list[float] = []
    wake_ms: list[float] = []
    burst_seconds = 0.0
    undelivered = 0
    prepare_started = time.perf_counter()
    prepare_seconds = 0.0
    for round_number in range(args.jobs_per_user):
        await enter(bot, driver, "prepare")
        prepare_started = time.perf_counter()
        left = await wait_until_no_active_jobs(bot, timeout=30)
        if left:
            print(f"warning: {left} job(s) of the previous round still active")
        summaries = await open_summaries(
            users,
            "Demo",
            "Custom prompt",
            STEP_TIMEOUT,
            concurrency=len(users),
            prompt=lambda u, r=round_number: f"benchmark picture {u.id} round {r}",
        )
        await asyncio.sleep(0.5)  # let the last screen deletions settle
        prepare_seconds += time.perf_counter() - prepare_started
        await enter(bot, driver, "burst")
        await burst(users, watches, summaries)
        await enter(bot, driver, "after")
        finished = [w for w in watches if w.document_at is not None]
        undelivered += len(watches) - len(finished)
        document_ms += [w.confirm_to_document_ms for w in finished]  # type: ignore[misc]
        photo_ms += [w.confirm_to_photo_ms for w in finished if w.photo_at is not None]  # type: ignore[misc]
        wake_ms += [(w.woke_at - w.document_at) * 1000 for w in finished if w.woke_at]  # type: ignore[operator]
        first_press = min(w.pressed_at for w in watches)  # type: ignore[type-var]
        last_delivery = max(w.document_at for w in finished) if finished else first_press
        burst_seconds += last_delivery - first_press

    bot_report = await bot.stop()
    driver_report = await driver.stop()
    jobs = len(document_ms)
    warnings, errors, first_errors = log_summary(bot.log_path)
    rows = [
        ("setup", f"{args.users} users x {args.jobs_per_user} job(s), bot {bot.where}"),
        ("database", database_name),
        ("demo provider", f"demo_latency=0, demo_image_size={args.image_size} (PNG, 1 image)"),
        (
            "bot settings",
            settings_summary(
                settings,
                ["worker_concurrency", "provider_concurrency", "throttle_rate", "log_level"],
            ),
        ),
        ("warm-up job (not counted)", f"{warm_ms:.0f} ms"),
        ("conversations to summary", f"{prepare_seconds:.1f} s (not timed as latency)"),
        ("confirm -> photo", spread(photo_ms)),
        ("confirm -> document", spread(document_ms)),
        ("delivered", f"{jobs} of {jobs + undelivered} jobs"),
        (
            "throughput",
            f"{jobs / burst_seconds:.1f} jobs/s ({jobs} jobs, bursts took {burst_seconds:.2f} s)"
            if burst_seconds > 0
            else "n/a",
        ),
        ("bot peak RSS (ru_maxrss)", f"{mb(bot_report['peak_rss'])} over the process lifetime"),
        ("bot RSS after start-up", mb(ready.get("rss"))),
        ("bot max RSS during bursts", mb(phase_max_rss(bot_report, "burst"))),
        ("bot loop lag during bursts", spread(phase_lags(bot_report, "burst"))),
    ]
    if bot_report.get("tracemalloc_peak") is not None:
        rows.append(("bot tracemalloc peak", mb(bot_report["tracemalloc_peak"])))
    if not args.in_process:
        rows.append(("driver loop lag, bursts", spread(phase_lags(driver_report, "burst"))))
        rows.append(("driver peak RSS", mb(driver_report["peak_rss"])))
    rows += [
        ("observer wake-up delay", f"median {statistics.median(wake_ms):.2f} ms" if wake_ms else "-"),
        ("emulator errors", str(len(emulator.errors))),
        ("bot log", f"{warnings} warnings, {errors} errors"),
    ]
    print_table("Lumigram generation latency (confirm -> delivered)", rows)
    for line in first_errors:
        print(f"  log: {line}")
    if args.profile:
        print_profile(args.profile)
    return 0


async def enter(bot: Any, driver: DriverProbe, phase: str) -> None:
    driver.enter(phase)
    await bot.call("phase", name=phase)


def main() -> int:
    args = parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
