"""/start throughput, memory and cold start of ``lumigram run`` against a bare aiogram bot.

    .venv/bin/python bench/start_throughput.py            # 3 rounds, 1,000 users, 5,000 updates
    .venv/bin/python bench/start_throughput.py --quick    # smoke test (CI): no goals checked
    .venv/bin/python bench/start_throughput.py --rounds 5 --json figures.json

Both bots run as child processes, one at a time, against the same Telegram Bot API
emulator in this process (flood control off), alternating for ``--rounds`` rounds, so
that each ratio is taken on the same machine within a minute or two:

- **bare**: ``bench/echo_bot.py``, an aiogram ``Dispatcher`` whose one handler answers
  ``/start`` with ``message.answer("Hello!")``;
- **lumigram**: ``lumigram run`` with the default embedded settings (SQLite and storage
  in a temp dir, the demo provider, in-process workers, INFO logs to a file), only
  ``BOT_TOKEN``, ``TELEGRAM_API_BASE``, ``DATABASE_URL``, ``STORAGE_DIR`` and
  ``HTTP_PORT`` set. Its database is migrated once before the first round, so every
  round's start is a restart.

Each run of a bot: spawn it (a fresh bot token, fresh chats) -> **cold start** = spawn to
its first ``getUpdates`` at the emulator -> 2 s idle -> **idle RSS** -> ``--users`` users
send ``/start`` once and are answered (not counted: the users are "returning" from now
on) -> the peak-RSS mark is reset (``/proc/<pid>/clear_refs``) -> ``--updates`` ``/start``
updates from those users (round robin) are queued at once -> **throughput** = answers
per second from the first answer to the last (an update is answered when the emulator
has stored the bot's reply; throttle notices do not count) -> **peak RSS** = the
process's ``VmHWM`` over the load (and the largest ``VmRSS`` sampled every 0.1 s) ->
SIGTERM. RSS is the bot process's own (``/proc/<pid>/status``).

The figures printed are medians over the rounds (ratios and differences are taken
within each round). Exit status 1 only if something is broken (an update not answered,
a bot that died, an error answer of the emulator); timing never fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from harness import MB

from lumigram.emulator import FloodLimits, SimUser, TelegramEmulator

BENCH_DIR = Path(__file__).resolve().parent
FIRST_USER_ID = 810_000
REPLY_MARK = "Hello"  # in both bots' answer to /start ("Hello!", "👋 Hello, <b>...")
DEFAULT_THROTTLE_BURST = 5  # lumigram's THROTTLE_BURST default
IDLE_SECONDS = 2.0
START_TIMEOUT = 120.0  # seconds to the first getUpdates
STALL_TIMEOUT = 60.0  # seconds without a new answer before the run counts as broken
CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ("bare", "lumigram")

GOALS = {  # issue 14
    "throughput": 0.70,  # lumigram / bare, at least
    "peak_rss": 40 * MB,  # lumigram - bare, at most
    "cold_start": 1.15,  # lumigram / bare, at most
    "idle_rss": 25 * MB,  # lumigram - bare, at most
}


class BrokenRunError(Exception):
    """Something that is not a timing went wrong: the benchmark fails."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, 50 users")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--users", type=int, default=None, help="default 1000 (quick: 50)")
    parser.add_argument("--updates", type=int, default=None, help="default 5000 (quick: 200)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the figures here")
    parser.add_argument(
        "--keep-logs", default=None, metavar="DIR", help="copy both bots' logs into DIR"
    )
    args = parser.parse_args()
    quick = (1, 50, 200)
    full = (3, 1000, 5000)
    rounds, users, updates = quick if args.quick else full
    args.rounds = args.rounds or rounds
    args.users = args.users or users
    args.updates = args.updates or updates
    if args.rounds < 1 or args.users < 1 or args.updates < 2:
        parser.error("--rounds and --users must be at least 1, --updates at least 2")
    return args


# --- the emulator side ------------------------------------------------------------------


class ApiTap:
    """Wraps the emulator's ``BotApiServer.execute`` (every Bot API call goes through it):
    the moment each bot token's first ``getUpdates`` arrives, and the moment each of its
    replies to ``/start`` (a ``sendMessage`` whose text has ``REPLY_MARK``) was stored."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self.first_poll: dict[str, float] = {}
        self.replies: dict[str, list[float]] = {}
        self._execute = emulator.server.execute
        emulator.server.execute = self._tapped  # type: ignore[method-assign]

    async def _tapped(
        self, token: str, method: str, raw: Mapping[str, Any], *, via: str = "http"
    ) -> tuple[dict[str, Any], int]:
        name = method.lower()
        if name == "getupdates" and token not in self.first_poll:
            self.first_poll[token] = time.perf_counter()
        response, status = await self._execute(token, method, raw, via=via)
        if status == 200 and name == "sendmessage" and REPLY_MARK in str(raw.get("text", "")):
            self.replies.setdefault(token, []).append(time.perf_counter())
        return response, status

    def answered(self, token: str) -> int:
        return len(self.replies.get(token, ()))


def start_update(user: SimUser, message_id: int) -> dict[str, Any]:
    """A ``message`` update with ``/start`` from ``user``, as Telegram sends it."""
    sender = user.profile.to_user()
    chat = {"id": user.chat_id, "type": "private", "first_name": user.profile.first_name}
    return {
        "message": {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }
    }


# --- the bot process ----------------------------------------------------------------------


class Child:
    """One bot process; its memory and CPU read from ``/proc/<pid>``."""

    def __init__(self, kind: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.kind = kind
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = cwd / f"{kind}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        log = self._open_log()
        try:
            self.spawned_at = time.perf_counter()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            log.close()  # the child has its own copy

    def _open_log(self) -> BinaryIO:
        return open(self.log_path, "ab")  # closed by start(), once the child has it

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise BrokenRunError(
                f"the {self.kind} bot exited (code {self.process.returncode}); "
                f"its log ends with:\n{self.log_tail()}"
            )

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (the peak since start or since ``reset_peak``) in bytes."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024  # kB
        return values

    def reset_peak(self) -> bool:
        """Set VmHWM back to the current RSS (Linux ≥ 4.0); False where not allowed."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")
        except OSError:
            return False
        return True

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, all its threads."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    async def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit status."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=grace)
            except TimeoutError:
                print(f"  the {self.kind} bot ignored SIGTERM for {grace:g} s: killed")
        await self.kill()
        return process.returncode

    async def kill(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def keep_log(self, folder: str | None, name: str) -> None:
        """Copy the log into ``folder`` (--keep-logs), then remove it."""
        if folder and self.log_path.exists():
            keep = Path(folder)
            keep.mkdir(parents=True, exist_ok=True)
            (keep / name).write_bytes(self.log_path.read_bytes())
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class PeakSampler:
    """The largest VmRSS seen every 0.1 s while running (a check on VmHWM)."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.max_rss = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.max_rss = max(self.max_rss, self.child.memory().get("VmRSS", 0))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class RunFigures:
    kind: str
    round: int
    cold_start_s: float
    idle_rss: int
    warmup_s: float
    peak_rss: int
    peak_from_hwm: bool  # False: only the sampled maximum (clear_refs refused)
    answered: int
    throughput: float  # answers/s, first answer to last
    injected_to_last_s: float  # from the first update queued to the last answer
    cpu_per_update_ms: float  # the bot's CPU over the load / updates
    bot_cpu_share: float  # the bot's CPU over the load / wall time (1.0 = one core)
    driver_cpu_share: float  # this process's (emulator's) CPU over the load / wall time
    exit_code: int | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(tmp: Path) -> dict[str, str]:
    """A clean environment: no developer settings (DATABASE_URL, REDIS_URL...) leak in."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    env["TMPDIR"] = str(tmp)
    return env


def lumigram_argv() -> list[str]:
    """The ``lumigram`` console script of this virtualenv (``python -m lumigram`` if none)."""
    script = Path(sys.executable).parent / "lumigram"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lumigram"]


def lumigram_env(args: argparse.Namespace, tmp: Path, emulator: TelegramEmulator) -> dict[str, str]:
    env = base_env(tmp)
    env.update(
        TELEGRAM_API_BASE=emulator.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'lumigram' / 'lumigram.db'}",
        STORAGE_DIR=str(tmp / "lumigram" / "files"),
    )  # BOT_TOKEN and HTTP_PORT: each run its own
    per_user = math.ceil(args.updates / args.users)
    if per_user > DEFAULT_THROTTLE_BURST:  # more /start per user than the default burst
        env["THROTTLE_BURST"] = str(per_user)
    return env


async def migrate(env: dict[str, str], cwd: Path) -> None:
    """``lumigram migrate`` once, so that every measured start is a restart."""
    process = await asyncio.create_subprocess_exec(
        *lumigram_argv(),
        "migrate",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise BrokenRunError(f"lumigram migrate failed:\n{output.decode(errors='replace')}")


async def wait_until(
    condition: Callable[[], bool], child: Child, what: str, timeout: float
) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        child.check_alive()
        if time.perf_counter() >= deadline:
            raise BrokenRunError(f"{what}: nothing after {timeout:g} s")
        await asyncio.sleep(0.02)


async def wait_answers(tap: ApiTap, token: str, target: int, child: Child, what: str) -> None:
    """Until ``target`` answers; broken if none comes for ``STALL_TIMEOUT`` seconds."""
    seen, last_change = tap.answered(token), time.perf_counter()
    while seen < target:
        child.check_alive()
        await asyncio.sleep(0.05)
        now_seen = tap.answered(token)
        if now_seen != seen:
            seen, last_change = now_seen, time.perf_counter()
        elif time.perf_counter() - last_change > STALL_TIMEOUT:
            raise BrokenRunError(
                f"{what}: {seen} of {target} answered, none for {STALL_TIMEOUT:g} s "
                f"(the {child.kind} bot's log ends with:\n{child.log_tail()})"
            )


# --- one run of one bot ---------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, emulator: TelegramEmulator) -> None:
        self.args = args
        self.tmp = tmp
        self.emulator = emulator
        self.tap = ApiTap(emulator)
        self.lumigram_env = lumigram_env(args, tmp, emulator)
        self.children: list[Child] = []
        self.message_ids = 10_000_000

    def child(self, kind: str, token: str) -> Child:
        if kind == "bare":
            env = base_env(self.tmp)
            env.update(BOT_TOKEN=token, TELEGRAM_API_BASE=self.emulator.base_url)
            argv = [sys.executable, str(BENCH_DIR / "echo_bot.py")]
        else:
            env = dict(self.lumigram_env, BOT_TOKEN=token, HTTP_PORT=str(free_port()))
            argv = [*lumigram_argv(), "run"]
        child = Child(kind, argv, env, self.tmp)
        self.children.append(child)
        return child

    async def run(self, kind: str, number: int) -> RunFigures:
        args, tap = self.args, self.tap
        token = self.emulator.create_bot(username=f"{kind}_{number}_bot", first_name=kind)
        bot_id = int(token.split(":")[0])
        users = [
            self.emulator.user(user_id=FIRST_USER_ID + i, first_name=f"User{i}", token=token)
            for i in range(args.users)
        ]
        child = self.child(kind, token)
        try:
            await child.start()
            await wait_until(
                lambda: token in tap.first_poll, child, f"{kind}: first getUpdates", START_TIMEOUT
            )
            cold_start = tap.first_poll[token] - child.spawned_at
            await asyncio.sleep(IDLE_SECONDS)
            idle_rss = child.memory()["VmRSS"]

            # Every user says /start once: from now on they are returning users.
            started = time.perf_counter()
            for user in users:
                await user.send_text("/start")
            await wait_answers(tap, token, len(users), child, f"{kind}: warm-up")
            warmup = time.perf_counter() - started
            await asyncio.sleep(1.0)  # the per-user buckets fill up again

            updates = []
            for i in range(args.updates):
                self.message_ids += 1
                updates.append(start_update(users[i % len(users)], self.message_ids))
            from_hwm = child.reset_peak()
            sampler = PeakSampler(child)
            sampler.start()
            cpu_before, driver_before = child.cpu_seconds(), time.process_time()
            injected_at = time.perf_counter()
            for update in updates:  # no await yields here: all are queued before any poll
                await self.emulator.send_raw_update(token, update)
            target = len(users) + args.updates
            await wait_answers(tap, token, target, child, f"{kind}: load")
            finished = time.perf_counter()
            cpu = child.cpu_seconds() - cpu_before
            driver_cpu = time.process_time() - driver_before
            await sampler.stop()
            hwm = child.memory()["VmHWM"]
            peak = max(hwm, sampler.max_rss) if from_hwm else sampler.max_rss

            answers = tap.replies[token][len(users) :]
            first, last = answers[0], answers[-1]
            wall = finished - injected_at
            figures = RunFigures(
                kind=kind,
                round=number,
                cold_start_s=cold_start,
                idle_rss=idle_rss,
                warmup_s=warmup,
                peak_rss=peak,
                peak_from_hwm=from_hwm,
                answered=len(answers),
                throughput=(len(answers) - 1) / (last - first) if last > first else math.nan,
                injected_to_last_s=last - injected_at,
                cpu_per_update_ms=cpu / args.updates * 1000,
                bot_cpu_share=cpu / wall,
                driver_cpu_share=driver_cpu / wall,
            )
        finally:
            exit_code = await child.stop()
            self.children.remove(child)
            child.keep_log(args.keep_logs, f"{kind}-{number}.log")
        refused = [r for r in self.emulator.errors if r.bot_id == bot_id]
        self.emulator.clear_log()
        if refused:
            lines = "\n".join(f"  {r}" for r in refused[:10])
            raise BrokenRunError(f"{kind}: the emulator refused {len(refused)} call(s):\n{lines}")
        figures.exit_code = exit_code
        return figures

    async def kill_all(self) -> None:
        for child in list(self.children):
            await child.kill()


# --- the report -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize(rounds: list[dict[str, RunFigures]]) -> dict[str, dict[str, float]]:
    """Medians of each bot's figures, and of the per-round ratio or difference."""

    def both(attr: str) -> tuple[list[float], list[float]]:
        return (
            [float(getattr(r["bare"], attr)) for r in rounds],
            [float(getattr(r["lumigram"], attr)) for r in rounds],
        )

    summary: dict[str, dict[str, float]] = {}
    for name, attr, relation in (
        ("throughput", "throughput", "ratio"),
        ("peak_rss", "peak_rss", "difference"),
        ("cold_start", "cold_start_s", "ratio"),
        ("idle_rss", "idle_rss", "difference"),
        ("cpu_per_update_ms", "cpu_per_update_ms", "ratio"),
        ("driver_cpu_share", "driver_cpu_share", "difference"),
    ):
        bare, lumi = both(attr)
        pairs = list(zip(bare, lumi, strict=True))
        if relation == "ratio":
            relative = [theirs / ours if ours else math.nan for ours, theirs in pairs]
        else:
            relative = [theirs - ours for ours, theirs in pairs]
        summary[name] = {
            "bare": median(bare),
            "lumigram": median(lumi),
            relation: median(relative),
        }
    return summary


def met(name: str, summary: dict[str, dict[str, float]]) -> bool:
    figure = summary[name]
    if name == "throughput":
        return figure["ratio"] >= GOALS[name]
    if name == "cold_start":
        return figure["ratio"] <= GOALS[name]
    return figure["difference"] <= GOALS[name]


def print_report(
    args: argparse.Namespace, rounds: list[dict[str, RunFigures]], summary: dict[str, Any]
) -> None:
    print("\nPer run:")
    print(
        f"  {'round':>5} {'bot':9} {'cold start':>10} {'idle RSS':>9} {'answers/s':>9} "
        f"{'peak RSS':>9} {'CPU/update':>10} {'bot CPU':>8} {'driver CPU':>10} {'warm-up':>8}"
    )
    for number, pair in enumerate(rounds, 1):
        for kind in KINDS:
            run = pair[kind]
            print(
                f"  {number:>5} {kind:9} {run.cold_start_s:9.2f}s {run.idle_rss / MB:6.1f} MB "
                f"{run.throughput:9.0f} {run.peak_rss / MB:6.1f} MB "
                f"{run.cpu_per_update_ms:8.2f}ms {run.bot_cpu_share:8.0%} "
                f"{run.driver_cpu_share:10.0%} {run.warmup_s:7.1f}s"
            )
    if not all(pair[kind].peak_from_hwm for pair in rounds for kind in KINDS):
        print("  (peak RSS: /proc/<pid>/clear_refs refused, so only the 0.1 s samples count)")

    s = summary
    rows = [
        (
            f"/start throughput, {args.updates:,} updates from {args.users:,} returning users",
            f"{s['throughput']['bare']:.0f}/s",
            f"{s['throughput']['lumigram']:.0f}/s",
            f"{s['throughput']['ratio']:.2f} of bare",
            f">= {GOALS['throughput']:.2f}",
            met("throughput", s),
        ),
        (
            "peak RSS during that load",
            f"{s['peak_rss']['bare'] / MB:.1f} MB",
            f"{s['peak_rss']['lumigram'] / MB:.1f} MB",
            f"{s['peak_rss']['difference'] / MB:+.1f} MB",
            f"<= +{GOALS['peak_rss'] / MB:.0f} MB",
            met("peak_rss", s),
        ),
        (
            "cold start to first getUpdates",
            f"{s['cold_start']['bare']:.2f} s",
            f"{s['cold_start']['lumigram']:.2f} s",
            f"{s['cold_start']['ratio']:.2f}x",
            f"<= {GOALS['cold_start']:.2f}x",
            met("cold_start", s),
        ),
        (
            f"idle RSS ({IDLE_SECONDS:g} s after the first getUpdates)",
            f"{s['idle_rss']['bare'] / MB:.1f} MB",
            f"{s['idle_rss']['lumigram'] / MB:.1f} MB",
            f"{s['idle_rss']['difference'] / MB:+.1f} MB",
            f"<= +{GOALS['idle_rss'] / MB:.0f} MB",
            met("idle_rss", s),
        ),
    ]
    header = ("figure", "bare", "lumigram", "lumigram vs bare", "goal", "met")
    cells = [header, *[(*row[:5], "yes" if row[5] else "no") for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    runs = f"median of {len(rounds)} round{'s' if len(rounds) > 1 else ''}"
    title = f"/start: lumigram run vs a bare aiogram bot, same emulator ({runs})"
    print(f"\n{title}\n{'-' * len(title)}")
    for index, row in enumerate(cells):
        print("  " + "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))
    cpu = s["cpu_per_update_ms"]
    print(
        f"\n  bot CPU per update: bare {cpu['bare']:.2f} ms, lumigram {cpu['lumigram']:.2f} ms "
        f"({cpu['ratio']:.1f}x); the emulator's process used "
        f"{s['driver_cpu_share']['bare']:.0%} / {s['driver_cpu_share']['lumigram']:.0%} "
        "of a core during the load (bare / lumigram)"
    )
    if args.quick:
        print("  quick mode (smoke test): too small for the goals; 'met' is only indicative")


def write_json(
    path: str,
    args: argparse.Namespace,
    rounds: list[dict[str, RunFigures]],
    summary: dict[str, Any],
) -> None:
    goals = {
        name: {
            "goal": GOALS[name],
            "relation": "ratio" if name in ("throughput", "cold_start") else "difference",
            "met": met(name, summary),
        }
        for name in GOALS
    }
    document = {
        "benchmark": "start_throughput",
        "quick": args.quick,
        "rounds": args.rounds,
        "users": args.users,
        "updates": args.updates,
        "units": {"rss": "bytes", "cold_start": "seconds", "throughput": "answers/s"},
        "summary": summary,
        "goals": goals,
        "runs": [{kind: asdict(pair[kind]) for kind in KINDS} for pair in rounds],
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# --- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lumigram-bench-start-") as tmp_name:
        tmp = Path(tmp_name)
        emulator = TelegramEmulator(flood=FloodLimits.unlimited())
        await emulator.start(host="127.0.0.1", port=0)
        bench = Bench(args, tmp, emulator)
        rounds: list[dict[str, RunFigures]] = []
        try:
            (tmp / "lumigram").mkdir()
            await migrate(bench.lumigram_env, tmp)
            for number in range(1, args.rounds + 1):
                order = KINDS if number % 2 else KINDS[::-1]  # alternate who goes first
                pair: dict[str, RunFigures] = {}
                for kind in order:
                    figures = await bench.run(kind, number)
                    pair[kind] = figures
                    print(
                        f"round {number}/{args.rounds} {kind:8}: cold start "
                        f"{figures.cold_start_s:.2f} s, idle {figures.idle_rss / MB:.1f} MB, "
                        f"{figures.throughput:.0f} answers/s, peak {figures.peak_rss / MB:.1f} MB",
                        flush=True,
                    )
                rounds.append(pair)
        except BrokenRunError as error:
            print(f"\nBROKEN: {error}", file=sys.stderr)
            return 1
        finally:
            await bench.kill_all()
            await emulator.stop()
    summary = summarize(rounds)
    print_report(args, rounds, summary)
    if args.json:
        write_json(args.json, args, rounds, summary)
        print(f"\nfigures written to {args.json}")
    return 0


def main() -> int:
    args = parse_args()
    if args.json:
        args.json = str(Path(args.json).resolve())
    if args.keep_logs:
        args.keep_logs = str(Path(args.keep_logs).resolve())
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
