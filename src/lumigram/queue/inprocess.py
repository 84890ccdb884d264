"""The embedded deployment's dispatcher: an asyncio priority queue and a pool of workers.

Implements ``services.ports.JobDispatcher``. Messages carry only job ids; the
worker (``JobRunner.run_step``) reads everything else from the database, so a
duplicate or a lost message is harmless: the claim ignores duplicates and the
sweeper re-dispatches what was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[int], Awaitable[None]]


class InProcessQueue:
    def __init__(self, *, concurrency: int = 8) -> None:
        self.concurrency = concurrency
        self._queue: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._pending: set[int] = set()  # queued and not yet picked up: no duplicates
        self._timers: set[asyncio.TimerHandle] = set()
        self._order = itertools.count()
        self._workers: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._closing = False
        self._step: Step | None = None

    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        if delay > 0:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def fire() -> None:
                self._timers.discard(handle)
                self._enqueue(job_id, priority)

            handle = loop.call_later(delay, fire)
            self._timers.add(handle)
        else:
            self._enqueue(job_id, priority)

    def _enqueue(self, job_id: int, priority: int) -> None:
        if job_id in self._pending:
            return
        self._pending.add(job_id)
        # Higher priority first, then first come first served.
        self._queue.put_nowait((-priority, next(self._order), job_id))

    @property
    def size(self) -> int:
        return self._queue.qsize()

    def start(self, step: Step) -> None:
        self._step = step
        self._workers = [
            asyncio.create_task(self._work(), name=f"lumigram-worker-{i}")
            for i in range(self.concurrency)
        ]

    async def _work(self) -> None:
        assert self._step is not None
        me = asyncio.current_task()
        assert me is not None
        while not self._closing:
            _, _, job_id = await self._queue.get()
            self._pending.discard(job_id)
            self._busy.add(me)
            try:
                await self._step(job_id)
            except Exception:
                log.exception("job %s: worker step failed", job_id)
            finally:
                self._busy.discard(me)
                self._queue.task_done()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Let the steps in progress finish (each is short), then stop the workers.

        Queued and scheduled ids are simply dropped: the jobs table still has them,
        and the next start's recovery sweep picks them up.
        """
        self._closing = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for worker in self._workers:
            if worker not in self._busy:
                worker.cancel()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=drain_timeout)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
