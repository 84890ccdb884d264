"""Provider callbacks: a provider says one of its jobs finished; the job is woken.

A callback is only a hint. It carries no result that is trusted: the woken worker
polls the provider as it always does and takes the outcome from there. So a callback
that is lost delays nothing beyond the next poll, and one delivered twice (or replayed)
makes one more poll at most: the claim lets one worker take the step, and a job that
has ended is not woken at all.

A job whose step is in flight (its lease is held) cannot be woken now: the worker will
schedule its next poll when it is done, possibly from an answer the provider gave just
before it finished. Such a job is tried again a few times shortly after, in the
background, until the worker has let go of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lumigram.services.clock import Clock, utc_now
from lumigram.services.ports import JobDispatcher

log = logging.getLogger(__name__)

# Seconds after which a job that was busy (leased) is tried again; a step takes
# milliseconds to a few seconds, so a few tries cover it.
BUSY_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True, slots=True)
class Wake:
    """What a wake-up found: the job, and whether it was made due (False: it is busy)."""

    job_id: int
    priority: int
    woken: bool


class CallbackGateway(Protocol):
    """The jobs table as callbacks see it (``db.repositories.callbacks``), over one
    transaction."""

    async def wake(self, provider: str, provider_job_id: str, now: datetime) -> Wake | None:
        """Make the active job polling this provider job due ``now`` if no worker holds
        it (``woken``); a job that is held is returned with ``woken`` False. None: no
        active job polls it (unknown, or ended)."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


CallbackTransactions = Callable[[], AbstractAsyncContextManager[CallbackGateway]]
Sleep = Callable[[float], Awaitable[None]]


class ProviderCallbacks:
    """Long-lived: one per process (it keeps the background retries of busy jobs)."""

    def __init__(
        self,
        transactions: CallbackTransactions,
        dispatcher: JobDispatcher,
        *,
        clock: Clock = utc_now,
        busy_retry_delays: Sequence[float] = BUSY_RETRY_DELAYS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._transactions = transactions
        self._dispatcher = dispatcher
        self._clock = clock
        self._busy_retry_delays = tuple(busy_retry_delays)
        self._sleep = sleep
        self._retries: dict[int, asyncio.Task[None]] = {}  # job id -> its retry task

    async def wake(self, provider: str, provider_job_id: str) -> int | None:
        """Wake the job that waits on ``provider_job_id``: one transaction, then the
        job id is handed to a worker (in-process, it does not wait for the step).
        Returns the job's id, or None when no active job waits on it."""
        found = await self._wake_once(provider, provider_job_id)
        if found is None:
            return None
        if not found.woken and found.job_id not in self._retries:
            task = asyncio.create_task(
                self._retry_busy(provider, provider_job_id, found.job_id),
                name=f"lumigram-callback-{found.job_id}",
            )
            self._retries[found.job_id] = task
            task.add_done_callback(lambda _: self._retries.pop(found.job_id, None))
        return found.job_id

    async def aclose(self) -> None:
        """Stop the background retries (the sweeper and the polls carry on without them)."""
        tasks = list(self._retries.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def retrying(self) -> int:
        """Busy jobs still waiting to be woken in the background."""
        return len(self._retries)

    async def _wake_once(self, provider: str, provider_job_id: str) -> Wake | None:
        async with self._transactions() as gateway:
            found = await gateway.wake(provider, provider_job_id, self._clock())
            await gateway.commit()
        if found is not None and found.woken:
            await self._dispatcher.dispatch(found.job_id, priority=found.priority)
        return found

    async def _retry_busy(self, provider: str, provider_job_id: str, job_id: int) -> None:
        for delay in self._busy_retry_delays:
            await self._sleep(delay)
            try:
                found = await self._wake_once(provider, provider_job_id)
            except Exception:  # the job's own polls still finish it
                log.warning("job %s: waking it after a callback failed", job_id, exc_info=True)
                return
            if found is None or found.woken:
                return
        log.info("job %s: still busy after its callback; its next poll finishes it", job_id)
