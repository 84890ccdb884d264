"""Job ids over a Redis stream: taskiq with taskiq-redis's ``RedisStreamBroker``.

With ``REDIS_URL`` set, every process hands new jobs to the workers through one
stream (``lumigram:jobs``) read by one consumer group (``lumigram-workers``): each
message goes to one ``lumigram worker`` and is acknowledged once its step has run;
a message whose worker died is delivered again to another. The message carries
only the job id (the jobs table is the truth), so a duplicate or a redelivery does
nothing: the claim is one conditional UPDATE. What the stream loses (a trim, a
Redis restart) the sweeper finds in the table.

The stream is kept short: each entry is capped by ``MAXLEN`` (approximate), and the
sweeper trims acknowledged entries (``trim``). A delay (a poll in 2 s, a retry
after back-off) is a timer in the process that asks for it; if that process dies
the job is due in the table and the sweeper dispatches it.

taskiq and redis are imported here only: the embedded mode never loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lumigram.config import mask_url
from lumigram.startup import StartupError

log = logging.getLogger(__name__)

Step = Callable[[int], Awaitable[None]]

STREAM = "lumigram:jobs"
GROUP = "lumigram-workers"
TASK_NAME = "lumigram.run_job"
MAXLEN = 100_000  # a hard cap on Redis memory (each entry is ~200 bytes)


def _import_broker() -> Any:
    try:
        from taskiq_redis import RedisStreamBroker
    except ImportError:
        raise StartupError(
            "REDIS_URL is set but taskiq-redis is not installed: pip install 'lumigram[scale]'"
        ) from None
    return RedisStreamBroker


class StreamQueue:
    """``services.ports.JobDispatcher`` over the stream, and the worker side of it."""

    def __init__(
        self,
        redis_url: str,
        *,
        concurrency: int = 8,
        redeliver_after: float = 60.0,
        stream: str = STREAM,
    ) -> None:
        broker_class = _import_broker()
        self.stream = stream
        self._url = redis_url
        self.concurrency = concurrency
        self.broker = broker_class(
            redis_url,
            queue_name=stream,
            consumer_group_name=GROUP,
            consumer_id="0",  # a group created late still gets what was sent before
            maxlen=MAXLEN,
            approximate=True,
            xread_block=1000,
            xread_count=concurrency,
            # A message unacknowledged this long (its worker died mid-step) goes to
            # another worker; the claim then decides (the lease may still be alive).
            idle_timeout=int(redeliver_after * 1000),
            unacknowledged_lock_timeout=5.0,
        )

        async def run_job(job_id: int) -> None:  # taskiq wants a function, not a method
            await self._run(job_id)

        self._task = self.broker.register_task(run_job, task_name=TASK_NAME)
        self._step: Step | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._kicks: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._started = False
        self.lag = 0  # entries not yet delivered to any worker, as of the last ``trim``
        logging.getLogger("taskiq").setLevel(logging.WARNING)  # no line per message

    async def open(self) -> None:
        """Connect and declare the consumer group (every role: senders and workers)."""
        if self._started:
            return
        try:
            await self.broker.startup()
        except Exception as error:
            reason = str(error).split("\n")[0] or type(error).__name__
            raise StartupError(
                f"cannot reach Redis at {mask_url(self._url)} ({reason}): "
                "check REDIS_URL and that Redis is running"
            ) from None
        self._started = True

    # --- sending (every role) ------------------------------------------------------
    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        """Hand ``job_id`` to a worker now or after ``delay`` seconds. Priority is kept
        by the table (the sweeper picks higher priority first); the stream is FIFO."""
        if self._closing:
            return  # the table has the job; another process's sweeper dispatches it
        if delay > 0:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def fire() -> None:
                self._timers.discard(handle)
                kick = asyncio.create_task(self._kick_logged(job_id))
                self._kicks.add(kick)
                kick.add_done_callback(self._kicks.discard)

            handle = loop.call_later(delay, fire)
            self._timers.add(handle)
            return
        await self._kick(job_id)

    async def _kick(self, job_id: int) -> None:
        await self.open()
        await self._task.kiq(job_id)

    async def _kick_logged(self, job_id: int) -> None:
        try:
            await self._kick(job_id)
        except Exception as error:  # the sweeper finds the job in the table
            log.warning(
                "job %s: could not reach the stream (%s); the sweeper has it", job_id, error
            )

    @property
    def size(self) -> int:
        """Jobs waiting in the stream (as of the last trim) and steps running here."""
        return self.lag + len(self._running)

    # --- receiving (workers) ----------------------------------------------------------
    async def _run(self, job_id: int) -> None:
        """The taskiq task: one step of the job. Acknowledged when it returns."""
        if self._closing or self._step is None:
            # Shutting down: give the message back to the stream for another worker.
            await self._kick_logged(job_id)
            return
        me = asyncio.current_task()
        if me is not None:
            self._running.add(me)
        try:
            await self._step(job_id)
        except Exception:
            log.exception("job %s: worker step failed", job_id)
        finally:
            if me is not None:
                self._running.discard(me)

    def start(self, step: Step) -> None:
        from taskiq.acks import AcknowledgeType
        from taskiq.api import run_receiver_task

        self._step = step
        self._receiver = asyncio.create_task(
            run_receiver_task(
                self.broker,
                max_async_tasks=self.concurrency,
                ack_time=AcknowledgeType.WHEN_EXECUTED,
                run_startup=False,
                propagate_exceptions=False,
            ),
            name="lumigram-stream-receiver",
        )

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Take no new steps (a message that still arrives is handed back to the
        stream), give the running ones ``drain_timeout`` seconds, then cancel the rest:
        the runner hands their jobs back (``JobRunner.hand_back``)."""
        self._closing = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._running:
            await asyncio.wait(set(self._running), timeout=drain_timeout)
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiver
            self._receiver = None
        for kick in list(self._kicks):
            with contextlib.suppress(Exception):
                await kick
        if self._started:
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
            self._started = False

    # --- housekeeping (the sweeper) -----------------------------------------------------
    async def trim(self) -> int:
        """Drop entries every worker has acknowledged; returns how many were removed.

        Everything older than the oldest unacknowledged entry (or than the last
        delivered one, when nothing is pending) has been handled.
        """
        from redis.asyncio import Redis

        async with Redis(connection_pool=self.broker.connection_pool) as redis:
            groups = await redis.xinfo_groups(self.stream)
            group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
            if group is None:
                return 0
            self.lag = int(group.get("lag") or 0)
            pending = await redis.xpending(self.stream, GROUP)
            oldest = pending.get("min") if pending and pending.get("pending") else None
            if oldest is None:
                last = _text(group.get("last-delivered-id")) or "0-0"
                millis, _, sequence = last.partition("-")
                oldest = f"{millis}-{int(sequence or 0) + 1}"
            removed = await redis.xtrim(self.stream, minid=_text(oldest), approximate=False)
            return int(removed)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
