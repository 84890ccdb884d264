"""Provider callbacks (``POST /callbacks/{provider}``) over real HTTP.

The real application serves HTTP on a port chosen first (its public URL has to be known
when the Replicate client is built); the FakeReplicate POSTs each finished prediction
there, signed as Replicate signs. The worker's polls are made slow (a minute apart), so a
job finishes within a test's patience only if the callback wakes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.config import load_settings
from lumigram.db import tables
from lumigram.db.repositories.callbacks import callback_transactions
from lumigram.domain.generation import GenerationRequest, TaskState
from lumigram.domain.jobs import JobStatus, JobStep
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.fakes.replicate import FakeReplicate
from lumigram.http.callbacks_in import (
    CallbackRejectedError,
    ReplicateVerifier,
    callback_verifiers,
    sign,
)
from lumigram.providers.http import RetryPolicy
from lumigram.providers.registry import build_providers, callback_url
from lumigram.providers.replicate import ReplicateProvider
from lumigram.services.callbacks import ProviderCallbacks
from tests.conftest import VALID_TOKEN
from tests.http.conftest import HttpRunner

KEY = "r8_TEST_callbacks_token_0123456789"
SLOW_POLL = 60.0  # seconds between polls: only a callback finishes a job in a test
PLACEHOLDER = "http://placeholder.invalid"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    server = FakeReplicate(api_key=KEY, run_seconds=1.0)
    server.max_wait = 0  # the create answers "starting" at once: the job has to poll
    await server.start()
    yield server
    await server.stop()


async def start_app(runner: HttpRunner, fake: FakeReplicate, **settings: Any) -> httpx.AsyncClient:
    client = await runner.start(
        # The port is known once the server is bound: the URL is put right below, as
        # HttpRunner does for Telegram's webhook.
        public_base_url=PLACEHOLDER,
        replicate_api_token=KEY,
        replicate_base_url=fake.base_url,
        **settings,
    )
    app = runner.app
    assert app is not None
    replicate = app.infra.providers["replicate"]
    assert isinstance(replicate, ReplicateProvider)
    if replicate.webhook_url is not None:
        assert replicate.webhook_url == f"{PLACEHOLDER}/callbacks/replicate"
        replicate.webhook_url = f"{client.base_url}/callbacks/replicate"
    # Polls a minute apart (the default starts at one second).
    policy = app.runner.policy
    slow = dataclasses.replace(policy.rules, first_poll=SLOW_POLL, max_poll_interval=SLOW_POLL)
    app.runner.policy = dataclasses.replace(policy, rules=slow)
    return client


async def ask_for_an_image(emulator: TelegramEmulator, user_id: int) -> Any:
    user = emulator.user(user_id=user_id, first_name="Cal", language_code="en")
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Nano Banana")
    await user.wait_for_text("Now choose a mode")
    await user.press("Custom prompt")
    await user.wait_for_text("Send me what to draw")
    await user.send_text("a lighthouse at dusk")
    await user.wait_for_text("Check your request")
    await user.press("Generate")
    return user


def photos(user: Any) -> list[ChatMessage]:
    return [m for m in user.bot_messages if m.kind == "photo"]


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (state changed by other tasks)
            await asyncio.sleep(0.02)


async def job_row(runner: HttpRunner) -> Any:
    assert runner.app is not None
    async with runner.app.sessionmaker() as session:
        return (await session.execute(select(tables.jobs).order_by(tables.jobs.c.id))).first()


def signed(fake: FakeReplicate, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    webhook_id, sent = "msg_test", str(int(time.time()) if timestamp is None else timestamp)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": sent,
        "webhook-signature": fake.sign(webhook_id, sent, body),
    }


# --- the whole application ------------------------------------------------------------


async def test_the_callback_wakes_the_job_before_its_next_poll(
    runner: HttpRunner, emulator: TelegramEmulator, fake: FakeReplicate
) -> None:
    client = await start_app(runner, fake)
    started = time.monotonic()
    user = await ask_for_an_image(emulator, 601)
    photo = await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    assert "a lighthouse at dusk" in (photo.text or "")
    assert time.monotonic() - started < SLOW_POLL / 2  # not by the poll a minute later

    # The prediction was asked to call back, on completion only.
    [create] = [r for r in fake.requests if r.path.endswith("/predictions")]
    body = json.loads(create.body)
    assert body["webhook"] == f"{client.base_url}/callbacks/replicate"
    assert body["webhook_events_filter"] == ["completed"]
    [delivered] = fake.delivered()
    assert delivered.status == 200
    async with asyncio.timeout(5):  # the photo goes out before the job is marked done
        while (job := await job_row(runner)).status != JobStatus.SUCCEEDED.value:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert job.provider_job_id == delivered.prediction_id

    # Replicate sends the same callback again (our answer was lost): nothing twice.
    again = await client.post(
        "/callbacks/replicate", content=delivered.body, headers=delivered.headers
    )
    assert again.status_code == 200
    assert again.json() == {"ok": True, "job": None}
    await user.wait_idle()
    assert len(photos(user)) == 1


async def test_forged_and_stale_callbacks_are_refused_and_wake_nothing(
    runner: HttpRunner, emulator: TelegramEmulator, fake: FakeReplicate
) -> None:
    client = await start_app(runner, fake)
    fake.lose_callbacks(1)
    user = await ask_for_an_image(emulator, 602)
    await wait_until(lambda: bool(fake.callbacks_lost))
    [prediction_id] = fake.callbacks_lost
    job = await job_row(runner)
    assert job.step == JobStep.POLL.value
    assert job.provider_job_id == prediction_id
    body = json.dumps(
        {"id": prediction_id, "status": "succeeded", "output": "https://x/out-0.jpg"}
    ).encode()

    forged = {**signed(fake, body)}
    forged["webhook-signature"] = sign(
        OTHER_SECRET, forged["webhook-id"], forged["webhook-timestamp"], body
    )
    stale = signed(fake, body, timestamp=int(time.time()) - 6 * 60)
    future = signed(fake, body, timestamp=int(time.time()) + 6 * 60)
    missing = {"content-type": "application/json"}
    tampered = signed(fake, body)
    for headers, content in (
        (forged, body),
        (stale, body),
        (future, body),
        (missing, body),
        (tampered, body.replace(b"succeeded", b"failed")),
    ):
        answer = await client.post("/callbacks/replicate", content=content, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == 401
    await asyncio.sleep(0.5)
    assert photos(user) == []
    unchanged = await job_row(runner)
    assert unchanged.status == JobStatus.RUNNING.value
    assert unchanged.next_attempt_at == job.next_attempt_at  # still a minute away

    # The genuine one, late: the job is woken and delivered, once.
    genuine = await client.post("/callbacks/replicate", content=body, headers=signed(fake, body))
    assert genuine.status_code == 200
    assert genuine.json() == {"ok": True, "job": job.id}
    await user.wait_for(lambda m: m.kind == "photo", timeout=10)
    await user.wait_idle()
    assert len(photos(user)) == 1


async def test_unknown_predictions_and_providers(runner: HttpRunner, fake: FakeReplicate) -> None:
    client = await start_app(runner, fake)
    body = json.dumps({"id": "not-one-of-ours", "status": "succeeded"}).encode()
    unknown = await client.post("/callbacks/replicate", content=body, headers=signed(fake, body))
    assert unknown.status_code == 200
    assert unknown.json() == {"ok": True, "job": None}  # so Replicate stops sending it

    nobody = await client.post("/callbacks/openai", content=body, headers=signed(fake, body))
    assert nobody.status_code == 404
    assert nobody.headers["content-type"] == "application/problem+json"
    not_json = b"not json"
    odd = await client.post(
        "/callbacks/replicate", content=not_json, headers=signed(fake, not_json)
    )
    assert odd.status_code == 200
    assert odd.json() == {"ok": True, "job": None}


async def test_without_callbacks_predictions_ask_for_none(
    runner: HttpRunner, emulator: TelegramEmulator, fake: FakeReplicate
) -> None:
    client = await start_app(runner, fake, provider_callbacks=False)
    await ask_for_an_image(emulator, 603)
    await wait_until(lambda: bool(fake.predictions))
    [create] = [r for r in fake.requests if r.path.endswith("/predictions")]
    assert "webhook" not in json.loads(create.body)
    body = json.dumps({"id": next(iter(fake.predictions))}).encode()
    # The route still answers (a callback from before the switch): it only wakes.
    answer = await client.post("/callbacks/replicate", content=body, headers=signed(fake, body))
    assert answer.status_code == 200


# --- the parts, one at a time -----------------------------------------------------------


def test_the_callback_url_comes_from_public_base_url_and_the_switch() -> None:
    base = {"bot_token": VALID_TOKEN, "replicate_api_token": KEY}
    with_url = load_settings(**base, public_base_url="https://bot.example.com/")
    assert callback_url(with_url, "replicate") == "https://bot.example.com/callbacks/replicate"
    assert load_settings(**base).provider_callbacks is True
    assert callback_url(load_settings(**base), "replicate") is None
    off = load_settings(**base, public_base_url="https://bot.example.com", provider_callbacks=False)
    assert callback_url(off, "replicate") is None
    replicate = build_providers(with_url)["replicate"]
    assert isinstance(replicate, ReplicateProvider)
    assert replicate.webhook_url == "https://bot.example.com/callbacks/replicate"
    assert callback_verifiers(build_providers(with_url)).keys() == {"replicate"}
    assert callback_verifiers(build_providers(load_settings(bot_token=VALID_TOKEN))) == {}


async def test_the_replicate_client_sends_the_webhook_and_fetches_the_secret_once(
    fake: FakeReplicate,
) -> None:
    url = "https://bot.example.com/callbacks/replicate"
    async with ReplicateProvider(KEY, base_url=fake.base_url, webhook_url=url) as client:
        status = await client.submit(GenerationRequest(model="google/nano-banana", prompt="a cat"))
        assert status.state is TaskState.RUNNING
        assert fake.predictions[status.provider_job_id or ""].webhook == url
        assert await client.webhook_secret() == fake.webhook_secret
        assert await client.webhook_secret() == fake.webhook_secret
        secrets = [r for r in fake.requests if r.path == "/v1/webhooks/default/secret"]
        assert len(secrets) == 1
        assert secrets[0].headers["Authorization"] == f"Bearer {KEY}"
    async with ReplicateProvider(KEY, base_url=fake.base_url) as plain:
        status = await plain.submit(GenerationRequest(model="google/nano-banana", prompt="a dog"))
        assert fake.predictions[status.provider_job_id or ""].webhook is None


async def test_the_verifier_follows_a_rotated_secret_at_most_once_a_minute(
    fake: FakeReplicate,
) -> None:
    retry = RetryPolicy(attempts=1)
    async with ReplicateProvider(KEY, base_url=fake.base_url, retry=retry) as client:
        verifier = ReplicateVerifier(client)
        body = b'{"id": "p1"}'
        assert await verifier.verify(signed(fake, body), body) == "p1"
        fake.webhook_secret = OTHER_SECRET  # rotated at Replicate
        with pytest.raises(CallbackRejectedError):  # fetched a moment ago: not again
            await verifier.verify(signed(fake, body), body)
        fresh = ReplicateVerifier(client)
        fresh._fetched_at = time.monotonic() - 120  # the last fetch is old
        assert await fresh.verify(signed(fake, body), body) == "p1"
        fetches = [r for r in fake.requests if r.path == "/v1/webhooks/default/secret"]
        assert len(fetches) == 2


async def test_the_fake_retries_a_callback_until_it_is_taken() -> None:
    answers = [500, 503, 200]
    seen: list[tuple[str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.headers["webhook-id"], request.headers["webhook-timestamp"]))
        return web.Response(status=answers.pop(0))

    app = web.Application()
    app.router.add_post("/hook", receive)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    fake = FakeReplicate(api_key=KEY, run_seconds=0.2)
    fake.callback_retry_delays = (0.05, 0.05, 0.05)
    await fake.start()
    try:
        async with ReplicateProvider(
            KEY, base_url=fake.base_url, webhook_url=f"http://127.0.0.1:{port}/hook"
        ) as client:
            await client.submit(GenerationRequest(model="google/nano-banana", prompt="a cat"))
        await wait_until(lambda: len(fake.callback_attempts) == 3)
        assert [a.status for a in fake.callback_attempts] == [500, 503, 200]
        assert len({webhook_id for webhook_id, _ in seen}) == 1  # one message, three tries
        await asyncio.sleep(0.2)
        assert len(fake.callback_attempts) == 3
        body = fake.callback_attempts[-1].body
        assert json.loads(body)["status"] == "succeeded"
    finally:
        await fake.stop()
        await app_runner.cleanup()


class RecordingDispatcher:
    def __init__(self) -> None:
        self.dispatched: list[int] = []

    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        self.dispatched.append(job_id)


async def add_job(sessionmaker: async_sessionmaker[AsyncSession], **values: Any) -> int:
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        exists = await session.scalar(select(tables.users.c.id).where(tables.users.c.id == 1))
        if exists is None:
            await session.execute(
                tables.users.insert().values(
                    id=1, language="en", referral_code="r1", created_at=now, last_seen_at=now
                )
            )
        row = {
            "user_id": 1,
            "language": "en",
            "model_id": "nano-banana",
            "provider": "replicate",
            "provider_model": "google/nano-banana",
            "mode": "custom",
            "prompt": "p",
            "final_prompt": "p",
            "settings": {},
            "reference_files": [],
            "result_files": [],
            "status": JobStatus.RUNNING.value,
            "step": JobStep.POLL.value,
            "next_attempt_at": now + timedelta(minutes=1),
            "created_at": now,
            "updated_at": now,
            **values,
        }
        job_id = await session.scalar(
            tables.jobs.insert().values(**row).returning(tables.jobs.c.id)
        )
        await session.commit()
    assert job_id is not None
    return int(job_id)


async def next_attempt(sessionmaker: async_sessionmaker[AsyncSession], job_id: int) -> datetime:
    async with sessionmaker() as session:
        value = await session.scalar(
            select(tables.jobs.c.next_attempt_at).where(tables.jobs.c.id == job_id)
        )
    assert isinstance(value, datetime)
    return value


async def test_wake_is_idempotent_and_waits_out_a_busy_worker(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    dispatcher = RecordingDispatcher()
    callbacks = ProviderCallbacks(
        callback_transactions(sessionmaker), dispatcher, busy_retry_delays=(0.05, 0.05, 0.05)
    )
    polling = await add_job(sessionmaker, provider_job_id="p-polling", priority=3)
    ended = await add_job(sessionmaker, provider_job_id="p-ended", status=JobStatus.SUCCEEDED.value)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    busy = await add_job(
        sessionmaker, provider_job_id="p-busy", lease_token="w", lease_expires_at=soon
    )
    submitting = await add_job(sessionmaker, provider_job_id="p-submit", step=JobStep.SUBMIT.value)
    try:
        before = datetime.now(UTC)
        assert await callbacks.wake("replicate", "p-polling") == polling
        assert before <= await next_attempt(sessionmaker, polling) <= datetime.now(UTC)
        assert await callbacks.wake("replicate", "p-polling") == polling  # harmless again
        assert dispatcher.dispatched == [polling, polling]
        assert await callbacks.wake("openai", "p-polling") is None  # another provider's id
        assert await callbacks.wake("replicate", "p-ended") is None
        assert await callbacks.wake("replicate", "p-submit") is None
        assert await callbacks.wake("replicate", "nobody") is None
        assert dispatcher.dispatched == [polling, polling]

        # A worker holds the job: it is woken once the worker lets go (a poll in flight
        # may have seen the prediction unfinished and scheduled the next one a minute on).
        assert await callbacks.wake("replicate", "p-busy") == busy
        assert await callbacks.wake("replicate", "p-busy") == busy  # one retry task only
        assert callbacks.retrying == 1
        assert busy not in dispatcher.dispatched
        async with sessionmaker() as session:
            await session.execute(
                tables.jobs.update()
                .where(tables.jobs.c.id == busy)
                .values(lease_token=None, lease_expires_at=None)
            )
            await session.commit()
        await wait_until(lambda: busy in dispatcher.dispatched, timeout=5)
        assert await next_attempt(sessionmaker, busy) <= datetime.now(UTC)
        await wait_until(lambda: callbacks.retrying == 0, timeout=5)
        assert ended
        assert submitting
    finally:
        await callbacks.aclose()
