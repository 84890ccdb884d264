"""``/healthz`` (the process is alive) and ``/readyz`` (it can serve users)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from lumigram.http.deps import Host

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
DATABASE_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(host: Host) -> JSONResponse:
    checks = {"database": await _database_answers(host), **host.readiness()}
    failing = [name for name, ok in checks.items() if not ok]
    body: dict[str, object] = {
        "status": "ready" if not failing else "not ready",
        "checks": {name: "ok" if ok else "failing" for name, ok in checks.items()},
    }
    if failing:
        body["not_ready"] = failing
    return JSONResponse(body, status_code=200 if not failing else 503)


async def _database_answers(host: Host) -> bool:
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT), host.reader() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("readiness: the database does not answer (%s)", type(error).__name__)
        return False
    return True
