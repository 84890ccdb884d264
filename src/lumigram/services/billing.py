"""Billing used until the money feature plugs into the job lifecycle: everything is free."""

from __future__ import annotations

from lumigram.domain.jobs import Job


class FreeBilling:
    """Implements ``ports.Billing`` by charging nothing."""

    async def reserve(self, job: Job, price: int) -> None:
        return None

    async def capture(self, job: Job, delivered_outputs: int) -> None:
        return None

    async def release(self, job: Job) -> None:
        return None
