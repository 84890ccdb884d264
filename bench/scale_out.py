"""Scale-out: jobs per second and confirm→delivered latency with 1, 2 and 3 worker
processes over PostgreSQL and Redis, against a fake provider that takes 2 s.

    .venv/bin/python bench/scale_out.py                     # the full run (~4 min)
    .venv/bin/python bench/scale_out.py --quick             # smoke test (CI), no goals

This process plays the bot: it confirms jobs through the same use case the bot calls
(``GenerationService.queue``; the hand-over goes to the Redis stream), and hosts the
Bot API emulator (the results land in the users' chats) and the Replicate fake (each
prediction takes ``--provider-seconds``). Each round starts N real `lumigram worker`
processes (WORKER_CONCURRENCY each) and measures, for N = 1, 2, 3:

- **burst**: ``--jobs`` confirmed at once; jobs/s from the first confirm to the last
  delivery (the workers' capacity);
- **paced**: the same number confirmed at a steady 80% of that N's burst rate;
  confirm→delivered p50/p99 (a deployment sized for its load), and the Bot API calls
  per second that reached the emulator.

Goals (issue 10): burst throughput at 3 workers ≥ 2.5x of 1 worker; paced p99 ≤ 1.5x the
provider's time. Needs PostgreSQL (``--database-url``, a scratch database is created and
dropped) and Redis (``--redis-url``; by default a private redis-server is started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import DeliveryWatch, percentile, scratch_database

from lumigram.config import load_settings
from lumigram.container import Services
from lumigram.domain.jobs import Channel, Origin
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.fakes.replicate import FakeReplicate
from lumigram.runtime import BotApplication, Role
from lumigram.services.generation import Draft
from lumigram.services.users import Contact

KEY = "r8_BENCH_scale_out_token_0123456789"
MODEL = "flux-1.1-pro"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small, no goals")
    parser.add_argument("--workers", default="1,2,3", help="worker process counts")
    parser.add_argument("--jobs", type=int, default=48, help="jobs per phase")
    parser.add_argument("--provider-seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "LUMIGRAM_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--redis-url", default="", help="default: a private redis-server")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.jobs, args.provider_seconds = "1,2", 6, 0.3
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis(given: str) -> Any:
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server: pass --redis-url redis://host:port/db")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(  # noqa: S603 (the machine's redis-server)
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


class Round:
    def __init__(self, app: BotApplication, emulator: TelegramEmulator, base_id: int) -> None:
        self.app = app
        self.emulator = emulator
        self.base_id = base_id

    async def confirm(self, user_id: int, prompt: str) -> None:
        async with self.app.sessionmaker() as session:
            services = Services(session, self.app.infra)
            registered = await services.users.register_contact(
                Contact(user_id=user_id, first_name="Bench", language_code="en")
            )
            await services.generation.queue(
                registered.user,
                Draft(model_id=MODEL, template_slug="custom", prompt=prompt),
                Origin(Channel.TELEGRAM, str(user_id)),
            )
            await services.run_followups()  # the hand-over to the stream

    async def phase(self, jobs: int, rate: float | None) -> dict[str, float]:
        """``jobs`` confirmations, at once (rate None) or ``rate`` per second."""
        users = [self.emulator.user(user_id=self.base_id + i) for i in range(jobs)]
        self.base_id += jobs
        watches = [DeliveryWatch(user) for user in users]
        calls_before = len(self.emulator.requests)
        started = time.perf_counter()
        wall_started = time.time()

        async def one(index: int) -> None:
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            watches[index].arm()
            await self.confirm(users[index].id, f"bench fox {users[index].id}")

        await asyncio.gather(*(one(i) for i in range(jobs)))
        delivered = await asyncio.gather(*(w.wait(timeout=600) for w in watches))
        assert all(delivered), "a job was not delivered"
        ended = max(w.document_at or 0 for w in watches)
        latencies = [w.confirm_to_document_ms or 0.0 for w in watches]
        calls = [r for r in self.emulator.requests[calls_before:] if r.at >= wall_started]
        span = max(ended - started, 1e-9)
        per_second: dict[int, int] = {}
        for call in calls:
            per_second[int(call.at)] = per_second.get(int(call.at), 0) + 1
        return {
            "jobs_per_s": jobs / span,
            "p50": percentile(latencies, 50) / 1000,
            "p99": percentile(latencies, 99) / 1000,
            "calls_per_s": len(calls) / span,
            "calls_peak": max(per_second.values(), default=0),
            "calls_per_job": len(calls) / jobs,
        }


async def start_workers(count: int, env: dict[str, str], folder: Path) -> list[Any]:
    processes = []
    for index in range(count):
        work = folder / f"worker-{count}-{index}"
        work.mkdir(parents=True)
        log = open(work / "lumigram.log", "wb")  # noqa: SIM115, ASYNC230 (a local file)
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lumigram",
                "worker",
                cwd=work,
                env={**env, "HTTP_PORT": str(free_port())},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    # Ready when each has taken its consumer place: give the imports time, then check.
    for process in processes:
        for _ in range(300):
            if process.returncode is not None:
                raise SystemExit(f"a worker ended at start-up (logs in {folder})")
            await asyncio.sleep(0.1)
            logs = await asyncio.to_thread(read_logs, folder, count)
            if logs.count("roles: worker") >= count:
                break
    await asyncio.sleep(1.0)  # the receivers are reading the stream
    return processes


def read_logs(folder: Path, count: int) -> str:
    return "".join(p.read_text() for p in folder.glob(f"worker-{count}-*/lumigram.log"))


async def stop_workers(processes: list[Any]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    for process in processes:
        await process.wait()


async def run(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="lumigram-scale-"))
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="bench_bot", first_name="Bench")
    fake = FakeReplicate(api_key=KEY, run_seconds=args.provider_seconds, slow_seconds=0.5)
    await fake.start()
    results: dict[int, dict[str, dict[str, float]]] = {}
    with private_redis(args.redis_url) as redis_url:
        async with scratch_database(args.database_url, tmp) as (database_url, described):
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "BOT_TOKEN": token,
                "TELEGRAM_API_BASE": emulator.base_url,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "STORAGE_DIR": str(tmp / "files"),
                "REPLICATE_API_TOKEN": KEY,
                "REPLICATE_BASE_URL": fake.base_url,
                "PROVIDER_CALLBACKS": "false",
                "PROVIDER_CONCURRENCY": "64",
                "WORKER_CONCURRENCY": str(args.concurrency),
                "FREE_TRIAL_IMAGES": "1000",
                "MAX_ACTIVE_JOBS": "5",
                "TELEGRAM_RATE_LIMIT": "1000",
                "SWEEP_INTERVAL": "2",
                "LOG_LEVEL": "WARNING",
            }
            settings = load_settings(
                **{k.lower(): v for k, v in env.items() if k not in {"PATH", "LOG_LEVEL"}}
            )
            app = BotApplication(settings, roles=frozenset({Role.API}))
            await app.prepare()
            bench = Round(app, emulator, base_id=500_000)
            try:
                for count in counts:
                    workers = await start_workers(count, env, tmp)
                    try:
                        burst = await bench.phase(args.jobs, None)
                        paced = await bench.phase(args.jobs, 0.8 * burst["jobs_per_s"])
                    finally:
                        await stop_workers(workers)
                    results[count] = {"burst": burst, "paced": paced}
                    print(
                        f"{count} worker(s): burst {burst['jobs_per_s']:.2f} jobs/s; paced "
                        f"p50 {paced['p50']:.2f} s p99 {paced['p99']:.2f} s",
                        flush=True,
                    )
            finally:
                await app.close()
    await fake.stop()
    await emulator.stop()
    report(args, results, described)
    return 0


def report(
    args: argparse.Namespace, results: dict[int, dict[str, dict[str, float]]], database: str
) -> None:
    provider = args.provider_seconds
    print(
        f"\nScale-out: {args.jobs} jobs per phase, provider {provider:.1f} s, "
        f"WORKER_CONCURRENCY={args.concurrency}, {database}, Redis stream\n"
    )
    print(
        "| workers | burst jobs/s | vs 1 worker | paced p50 | paced p99 | p99 / provider "
        "| Bot API calls/s (peak) | calls per job |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = results[min(results)]["burst"]["jobs_per_s"]
    for count, phases in sorted(results.items()):
        burst, paced = phases["burst"], phases["paced"]
        print(
            f"| {count} | {burst['jobs_per_s']:.2f} | {burst['jobs_per_s'] / base:.2f}x "
            f"| {paced['p50']:.2f} s | {paced['p99']:.2f} s | {paced['p99'] / provider:.2f}x "
            f"| {paced['calls_per_s']:.1f} ({paced['calls_peak']:.0f}) "
            f"| {paced['calls_per_job']:.1f} |"
        )
    if args.quick:
        print("\n(quick mode: a smoke test; the figures mean nothing, no goals checked)")
        return
    most = max(results)
    growth = results[most]["burst"]["jobs_per_s"] / base
    worst = max(p["paced"]["p99"] for p in results.values()) / provider
    print(
        f"\nthroughput {min(results)} -> {most} workers: {growth:.2f}x "
        f"(goal >= 2.5x: {'met' if growth >= 2.5 else 'NOT met'})"
    )
    print(
        f"worst paced p99: {worst:.2f}x the provider's {provider:.1f} s "
        f"(goal <= 1.5x: {'met' if worst <= 1.5 else 'NOT met'})"
    )


def main() -> int:
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
