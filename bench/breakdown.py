"""Where a job's wall-clock time goes, measured inside the bot process (``--breakdown``).

Installed on a ``BotApplication`` after it is built and before it starts, this wraps
(on the instances only; nothing in ``src/`` changes):

* the job queue: time from ``dispatch`` (no delay) until a worker starts the step;
* ``JobRunner`` steps: the whole step, the provider call (including the wait for a
  provider slot), progress notification, collecting outputs, delivery;
* every Bot API request the bot makes, by method (``session.make_request``);
* every ``asyncio.to_thread`` call (image work, file storage), by function;
* the database: the wait for a pooled connection, ``BEGIN IMMEDIATE`` (on SQLite it
  waits for the write lock), how long each transaction stays open (holds the lock),
  each SQL statement by verb and table, and the pool's checked-out count, sampled;
* the handling of each update by the dispatcher, by update type;
* CPU time by kind of thread (event loop, ``to_thread`` pool, aiosqlite threads).

Durations are wall-clock, so nested items overlap (a step contains its provider call).
The wrappers cost a few microseconds per call.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

Timings = dict[str, list[float]]


class Breakdown:
    def __init__(self) -> None:
        self.timings: Timings = defaultdict(list)
        self.enabled = False
        self.pool_checked_out: list[int] = []
        self._dispatched: dict[int, float] = {}
        self._pool: Any = None
        self.thread_cpu: dict[str, float] = defaultdict(float)
        self._cpu_at_start: dict[int, float] = {}
        # Calls that start inside this window are recorded, even if they end after it.
        self._window: tuple[float, float] = (math.inf, math.inf)

    def record(self, label: str, started: float) -> None:
        """Record ``now - started`` if recording was on when the call started."""
        since, until = self._window
        if since <= started < until:
            self.timings[label].append((time.perf_counter() - started) * 1000)

    def set_enabled(self, enabled: bool) -> None:
        now = time.perf_counter()
        if enabled and not self.enabled:
            self._window = (now, math.inf)
            self._cpu_at_start = thread_cpu_seconds()
        elif self.enabled and not enabled:
            self._window = (self._window[0], now)
            for kind, seconds in cpu_by_thread_kind(self._cpu_at_start).items():
                self.thread_cpu[kind] += seconds
        self.enabled = enabled

    def timed(self, label: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        @functools.wraps(call)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.record(label, started)

        return wrapper

    # --- installation ------------------------------------------------------------------
    def install(self, app: Any) -> None:
        self._wrap_queue(app.queue)
        self._wrap_runner(app.runner)
        self._wrap_notifier(app.notifier)
        self._wrap_bot_session(app.bot.session)
        self._wrap_to_thread()
        self._watch_transactions(app.engine.sync_engine)
        self._wrap_dispatcher(app.dispatcher)
        self._pool = app.engine.sync_engine.pool

    def _wrap_queue(self, queue: Any) -> None:
        dispatch = queue.dispatch

        async def timed_dispatch(job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
            if delay <= 0:
                self._dispatched.setdefault(job_id, time.perf_counter())
            await dispatch(job_id, delay=delay, priority=priority)

        queue.dispatch = timed_dispatch

    def _wrap_runner(self, runner: Any) -> None:
        run_step = runner.run_step

        async def timed_step(job_id: int) -> None:
            queued_at = self._dispatched.pop(job_id, None)
            if queued_at is not None:
                self.record("queue: dispatch -> worker starts step", queued_at)
            started = time.perf_counter()
            try:
                await run_step(job_id)
            finally:
                self.record("job: whole step (run_step)", started)

        runner.run_step = timed_step  # prepare() hands this to the queue
        for name, label in (
            ("_notify_progress", "job: progress notification"),
            ("_collect", "job: collect outputs (incl. delivery)"),
            ("_deliver", "job: deliver (send + final write)"),
            ("_write", "job: one leased write (transaction)"),
            ("_release", "job: release + schedule next step"),
        ):
            setattr(runner, name, self.timed(label, getattr(runner, name)))
        with_provider = runner._with_provider

        async def timed_provider(job: Any, call: Awaitable[Any]) -> Any:
            started = time.perf_counter()
            try:
                return await with_provider(job, call)
            finally:
                self.record(f"provider: {job.provider} call incl. slot wait", started)

        runner._with_provider = timed_provider

    def _wrap_notifier(self, notifier: Any) -> None:
        notifier.deliver = self.timed("notifier: deliver results", notifier.deliver)
        notifier.show_progress = self.timed("notifier: show progress", notifier.show_progress)

    def _wrap_bot_session(self, session: Any) -> None:
        make_request = session.make_request

        async def timed_request(bot: Any, method: Any, timeout: int | None = None) -> Any:
            started = time.perf_counter()
            try:
                return await make_request(bot, method, timeout=timeout)
            finally:
                name = getattr(method, "__api_method__", type(method).__name__)
                if name != "getUpdates":
                    self.record(f"bot api: {name}", started)

        session.make_request = timed_request

    def _wrap_to_thread(self) -> None:
        original = asyncio.to_thread

        async def timed_to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(func, *args, **kwargs)
            finally:
                name = getattr(func, "__qualname__", repr(func))
                self.record(f"thread: {name}", started)

        asyncio.to_thread = timed_to_thread  # type: ignore[assignment]

    def _watch_transactions(self, sync_engine: Any) -> None:
        """BEGIN wait (SQLite: the BEGIN IMMEDIATE statement), open time, pool waits."""

        def before_execute(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
            connection.info["bench_statement"] = time.perf_counter()

        def after_execute(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
            started = connection.info.pop("bench_statement", None)
            if started is None:
                return
            if statement.startswith("BEGIN"):
                self.record("db: BEGIN IMMEDIATE (wait for the write lock)", started)
            else:
                self.record(f"sql: {describe_statement(statement)}", started)

        def opened(connection: Any) -> None:
            connection.info["bench_open"] = time.perf_counter()

        def closed(connection: Any) -> None:
            started = connection.info.pop("bench_open", None)
            if started is not None:
                self.record("db: transaction open (BEGIN -> COMMIT/ROLLBACK)", started)

        event.listen(sync_engine, "before_cursor_execute", before_execute)
        event.listen(sync_engine, "after_cursor_execute", after_execute)
        event.listen(sync_engine, "begin", opened)  # runs after the project's BEGIN IMMEDIATE
        event.listen(sync_engine, "commit", closed)
        event.listen(sync_engine, "rollback", closed)

        pool = sync_engine.pool
        do_get = pool._do_get

        def timed_do_get() -> Any:
            started = time.perf_counter()
            try:
                return do_get()
            finally:
                self.record("db: wait for a pooled connection", started)

        pool._do_get = timed_do_get

    def _wrap_dispatcher(self, dispatcher: Any) -> None:
        feed_update = dispatcher.feed_update

        async def timed_feed(bot: Any, update: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await feed_update(bot, update, **kwargs)
            finally:
                self.record(f"update: {update.event_type}", started)

        dispatcher.feed_update = timed_feed

    # --- sampling and report -------------------------------------------------------------
    def sample(self) -> None:
        if self.enabled and self._pool is not None and hasattr(self._pool, "checkedout"):
            self.pool_checked_out.append(int(self._pool.checkedout()))

    def report(self) -> dict[str, Any]:
        pool = self._pool
        size = pool.size() if pool is not None and hasattr(pool, "size") else None
        return {
            "timings": dict(self.timings),
            "pool_checked_out_max": max(self.pool_checked_out, default=0),
            "pool_size": size,
            "pool_overflow": getattr(pool, "_max_overflow", None),
            "thread_cpu": dict(self.thread_cpu),
        }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def describe_statement(statement: str) -> str:
    """'UPDATE templates', 'SELECT jobs'...: the verb and the first table named."""
    verb = statement.split(None, 1)[0].upper() if statement.strip() else "?"
    table = _TABLE.search(statement)
    return f"{verb} {table.group(1) if table else ''}".strip()


def thread_cpu_seconds() -> dict[int, float]:
    """User + system CPU seconds of each thread of this process, by native thread id."""
    result: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        result[int(tid)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return result


def thread_kind(thread: threading.Thread | None) -> str:
    if thread is None:
        return "other threads (ended or not Python's)"
    if thread is threading.main_thread():
        return "main thread (event loop)"
    if thread.name.startswith("asyncio_"):
        return "asyncio.to_thread executor"
    if "_connection_worker_thread" in thread.name or type(thread).__module__.startswith(
        "aiosqlite"
    ):
        return "aiosqlite connection threads"
    return f"other: {type(thread).__name__}"


def cpu_by_thread_kind(before: dict[int, float]) -> dict[str, float]:
    by_id = {thread.native_id: thread for thread in threading.enumerate()}
    totals: dict[str, float] = defaultdict(float)
    for tid, seconds in thread_cpu_seconds().items():
        totals[thread_kind(by_id.get(tid))] += seconds - before.get(tid, 0.0)
    return dict(totals)
