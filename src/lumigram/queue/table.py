"""The dispatcher of a process without workers (``lumigram bot``, ``lumigram api``).

The jobs table is the queue: a job created here is found by a worker process's
sweeper within ``SWEEP_INTERVAL`` seconds. (The scale-out work replaces this with a
broker that wakes a worker at once.)
"""

from __future__ import annotations


class TableQueue:
    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        """Nothing to do: the job is in the table, due now or after its delay."""
