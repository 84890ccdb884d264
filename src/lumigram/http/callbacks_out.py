"""The API channel's job events: a finished generation is POSTed to its ``callback_url``.

For a job that came through the API with a ``callback_url``, each of the events
SUCCEEDED, FAILED and CANCELLED is POSTed there as the generation object (JSON, the
body of ``GET /v1/generations/{id}``, its status taken from the event), signed with
the API key's signing secret:

    Lumigram-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
    Lumigram-Event: generation.succeeded | generation.failed | generation.cancelled

Network errors and 5xx answers are tried again (by default after 1 s and 4 s, three
tries in all); nothing here raises, a delivery that fails in the end is logged (the URL
without its query). Delivery is at least once: the worker publishes SUCCEEDED before
it marks the job succeeded, so a crash in between delivers it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram import __version__
from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.domain.jobs import JobEvent, JobEventKind
from lumigram.http.routes.v1_requests import shown_url
from lumigram.http.routes.v1_schemas import Status, generation_object
from lumigram.services.api_keys import ApiKeyService

log = logging.getLogger(__name__)
CLOSE_GRACE = 5.0  # seconds callbacks in flight get at shutdown

SIGNATURE_HEADER = "Lumigram-Signature"
EVENT_HEADER = "Lumigram-Event"
TIMEOUT = httpx.Timeout(10.0)
FINAL_EVENTS: dict[JobEventKind, Status] = {
    JobEventKind.SUCCEEDED: "succeeded",
    JobEventKind.FAILED: "failed",
    JobEventKind.CANCELLED: "cancelled",
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Lumigram-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256>`` of
    ``f"{timestamp}.".encode() + body`` under ``secret`` (UTF-8)."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class ApiCallbacks:
    """``JobEvents`` for the API channel (the router of channels sends it API jobs)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        public_base_url: str | None,
        client: httpx.AsyncClient | None = None,
        retry_delays: Sequence[float] = (1.0, 4.0),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._base_url = public_base_url or None
        self._client = client
        self._own_client = client is None
        self._retry_delays = tuple(retry_delays)
        self._sending: set[asyncio.Task[None]] = set()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=TIMEOUT,
                follow_redirects=False,
                headers={"User-Agent": f"Lumigram/{__version__} (callbacks)"},
            )
        return self._client

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the callbacks in flight; those still going after ``timeout`` are
        cancelled."""
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def aclose(self) -> None:
        """Let callbacks in flight finish (a few seconds at most), then close the HTTP
        client if this object made it."""
        await self.drain(CLOSE_GRACE)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, event: JobEvent) -> None:
        status = FINAL_EVENTS.get(event.kind)
        job = event.job
        if status is None or not job.callback_url or job.id is None:
            return
        # Sent in the background: a slow or failing receiver never holds up the worker
        # (or the request) that published the event.
        task = asyncio.create_task(self._send(event, status, job.callback_url))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, event: JobEvent, status: Status, url: str) -> None:
        try:
            await self._deliver(event, status, url)
        except Exception:
            log.exception("job %s: the callback to %s failed", event.job.id, shown_url(url))

    async def _secret(self, key_id: int | None) -> str | None:
        if key_id is None:
            return None
        async with self._sessionmaker() as session:
            return await ApiKeyService(ApiKeyRepository(session), session).signing_secret(key_id)

    async def _deliver(self, event: JobEvent, status: Status, url: str) -> None:
        job = event.job
        secret = await self._secret(job.api_key_id)
        if secret is None:
            log.warning("job %s: no API key to sign its callback with; not sent", job.id)
            return
        results = [result for result, _ in event.outputs] if event.outputs else None
        if status != "succeeded":
            results = []
        body = generation_object(
            job, base_url=self._base_url, status=status, results=results
        ).model_dump(mode="json", by_alias=True)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        where = shown_url(url)
        tries = len(self._retry_delays) + 1
        for attempt in range(tries):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, int(time.time()), raw),
                EVENT_HEADER: f"generation.{status}",
            }
            try:
                response = await self._http().post(url, content=raw, headers=headers)
            except httpx.HTTPError as error:
                outcome = f"{type(error).__name__}"
                retry = True
            else:
                if response.is_success:
                    log.info("job %s: callback delivered to %s", job.id, where)
                    return
                outcome = f"HTTP {response.status_code}"
                retry = response.status_code >= 500
            if not retry or attempt + 1 == tries:
                log.warning(
                    "job %s: the %s callback to %s failed (%s) after %s tries; not sent again",
                    job.id,
                    status,
                    where,
                    outcome,
                    attempt + 1,
                )
                return
            delay = self._retry_delays[attempt]
            log.warning(
                "job %s: the %s callback to %s failed (%s); trying again in %.0f s",
                job.id,
                status,
                where,
                outcome,
                delay,
            )
            await asyncio.sleep(delay)
