"""The bot under test, wrapped with the probes the benchmarks read.

``BotHost`` starts the real ``lumigram.runtime.BotApplication`` (long polling the
emulator, in-process workers, migrations on start) and measures it from the inside:

* event-loop lag: a task sleeps 0.1 s over and over; the overshoot of each sleep
  is one sample (the time the loop was busy with something else);
* memory: the resident set size (``/proc/self/statm``) at each of those samples,
  and at the end ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's
  high-water mark of the process's RSS since it started;
* CPU time of the process (all threads) and every garbage-collection pause;
* optionally ``tracemalloc`` (Python allocations, from the first measured phase on),
  ``cProfile`` and the ``breakdown`` timers.

Samples are kept per *phase*; the benchmark names the phases ("prepare",
"burst", "submit", ...) as it goes.

Run as a script (``python bench/botproc.py CONFIG.json``) it is the child process the
benchmarks start by default, so that the numbers belong to the bot alone and not
to the emulator and the fake provider, which run in the benchmark's own process.
It then speaks JSON lines: commands on stdin, one answer per command on stdout
(prefixed, other output passes through); the bot logs to a file. ``BotHost`` is
also used directly for ``--in-process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSWER_PREFIX = "@@bench "  # marks protocol lines; anything else on stdout is passed through
LAG_INTERVAL = 0.1  # seconds between loop-lag samples
MB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process's RSS (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class PhaseSamples:
    lags_ms: list[float] = field(default_factory=list)
    max_rss: int = 0
    tracemalloc_peak: int = 0
    gc_pauses_ms: dict[int, list[float]] = field(default_factory=dict)  # by generation
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of all the process's threads


class Probe:
    """Loop lag and RSS, sampled every ``LAG_INTERVAL`` seconds, grouped by phase."""

    def __init__(self) -> None:
        self.phases: dict[str, PhaseSamples] = {}
        self.current = "start"
        self.phases[self.current] = PhaseSamples()
        self._task: asyncio.Task[None] | None = None
        self.on_sample: Callable[[], None] | None = None
        self._gc_started = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample_forever(), name="bench-probe")
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, stage: str, info: dict[str, int]) -> None:
        """Times every garbage collection (a pause of the whole process)."""
        if stage == "start":
            self._gc_started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._gc_started) * 1000
        pauses = self.phases[self.current].gc_pauses_ms
        pauses.setdefault(info["generation"], []).append(pause)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        self._close_phase()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def enter(self, name: str) -> None:
        self._close_phase()
        self.current = name
        self.phases.setdefault(name, PhaseSamples())
        self.phases[name].started = time.perf_counter()
        self.phases[name].cpu_started = time.process_time()
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()

    def _close_phase(self) -> None:
        samples = self.phases[self.current]
        samples.seconds += time.perf_counter() - samples.started
        samples.cpu_seconds += time.process_time() - samples.cpu_started
        samples.max_rss = max(samples.max_rss, current_rss_bytes())
        if tracemalloc.is_tracing():
            samples.tracemalloc_peak = max(
                samples.tracemalloc_peak, tracemalloc.get_traced_memory()[1]
            )

    async def _sample_forever(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_INTERVAL)
            lag = time.perf_counter() - before - LAG_INTERVAL
            samples = self.phases[self.current]
            samples.lags_ms.append(lag * 1000)
            samples.max_rss = max(samples.max_rss, current_rss_bytes())
            if self.on_sample is not None:
                self.on_sample()

    def report(self) -> dict[str, Any]:
        return {
            name: {
                "lags_ms": s.lags_ms,
                "max_rss": s.max_rss,
                "tracemalloc_peak": s.tracemalloc_peak,
                "seconds": s.seconds,
                "cpu_seconds": s.cpu_seconds,
                "gc_pauses_ms": {str(gen): pauses for gen, pauses in s.gc_pauses_ms.items()},
            }
            for name, s in self.phases.items()
        }


class BotHost:
    """The real bot plus the probes; commands are dicts, answers are dicts."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        profile_path: str | None = None,
        focus_phases: tuple[str, ...] = (),
        tracemalloc_frames: int = 0,
        log_path: str | None = None,
        breakdown: bool = False,
    ) -> None:
        self.settings = settings
        self.probe = Probe()
        self.profile_path = profile_path
        self.focus_phases = focus_phases
        self.tracemalloc_frames = tracemalloc_frames
        self.log_path = log_path
        self._profiler = cProfile.Profile() if profile_path else None
        self._breakdown: Any = None
        if breakdown:
            from breakdown import Breakdown

            self._breakdown = Breakdown()
        self._app: Any = None
        self._polling: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        from lumigram.config import load_settings
        from lumigram.runtime import BotApplication

        settings = load_settings(_env_file=None, **self.settings)  # never the developer's .env
        if self.log_path is not None:
            _log_to_file(self.log_path, settings.log_level, settings.bot_token.get_secret_value())
        self._app = BotApplication(settings)
        if self._breakdown is not None:
            self._breakdown.install(self._app)  # before prepare() starts the workers
            self.probe.on_sample = self._breakdown.sample
        await self._app.prepare()
        self._polling = asyncio.create_task(self._app.run_polling(handle_signals=False))
        self.probe.start()
        return {"event": "ready", "rss": current_rss_bytes(), "peak_rss": peak_rss_bytes()}

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        if name == "phase":
            self._enter_phase(str(command["name"]))
            return {"ok": True}
        if name == "active_jobs":
            return {"active": await self._count_active_jobs()}
        if name == "tracemalloc_top":
            return {"top": _tracemalloc_top(int(command.get("limit", 25)))}
        if name == "stop":
            return await self.stop()
        return {"error": f"unknown command {name!r}"}

    def _enter_phase(self, name: str) -> None:
        self.probe.enter(name)
        if self.tracemalloc_frames and name in self.focus_phases and not tracemalloc.is_tracing():
            # Traced from the first measured phase on: what the load allocates, not the imports.
            tracemalloc.start(self.tracemalloc_frames)
        if self._breakdown is not None:
            self._breakdown.set_enabled(name in self.focus_phases)
        if self._profiler is not None:
            if name in self.focus_phases:
                self._profiler.enable()
            else:
                self._profiler.disable()

    async def _count_active_jobs(self) -> int:
        from sqlalchemy import func, select

        from lumigram.db import tables
        from lumigram.domain.jobs import ACTIVE_STATUSES

        statuses = [status.value for status in ACTIVE_STATUSES]
        async with self._app.sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(tables.jobs)
                .where(tables.jobs.c.status.in_(statuses))
            )
        return int(count or 0)

    async def stop(self) -> dict[str, Any]:
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler.dump_stats(self.profile_path)
        await self.probe.stop()
        report = {
            "phases": self.probe.report(),
            "peak_rss": peak_rss_bytes(),
            "tracemalloc_peak": tracemalloc.get_traced_memory()[1]
            if tracemalloc.is_tracing()
            else None,
            "breakdown": self._breakdown.report() if self._breakdown is not None else None,
        }
        if self._app is not None:
            await self._app.stop()
            if self._polling is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self._polling, timeout=10)
            await self._app.close()
        return report


def _tracemalloc_top(limit: int) -> list[str]:
    """The largest live traced allocations, by source line and by file."""
    if not tracemalloc.is_tracing():
        return []
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / MB:.1f} MB, peak so far {peak / MB:.1f} MB; by line:"]
    lines += [
        f"{stat.size / MB:8.2f} MB {stat.count:8d} blocks  {stat.traceback[0]}"
        for stat in snapshot.statistics("lineno")[:limit]
    ]
    lines.append("by file:")
    lines += [
        f"{stat.size / MB:8.2f} MB {stat.count:8d} blocks  {stat.traceback[0].filename}"
        for stat in snapshot.statistics("filename")[: limit // 2]
    ]
    return lines


def _log_to_file(path: str, level: str, token: str) -> None:
    """Like ``lumigram run`` (same format, secrets masked), into the benchmark's log file."""
    import logging

    from lumigram.logs import SecretFilter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter([token]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# --- the child process ---------------------------------------------------------------


async def _serve(config: dict[str, Any]) -> None:
    host = BotHost(
        config["settings"],
        profile_path=config.get("profile_path"),
        focus_phases=tuple(config.get("focus_phases", ())),
        tracemalloc_frames=int(config.get("tracemalloc_frames", 0)),
        log_path=config.get("log_path"),
        breakdown=bool(config.get("breakdown")),
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(payload: dict[str, Any]) -> None:
        sys.stdout.write(ANSWER_PREFIX + json.dumps(payload) + "\n")
        sys.stdout.flush()

    answer(await host.start())
    while True:
        line = await reader.readline()
        if not line:  # the benchmark went away: stop cleanly
            await host.stop()
            return
        command = json.loads(line)
        answer(await host.handle(command))
        if command.get("cmd") == "stop":
            return


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
