"""KIE.ai callbacks (``POST /callbacks/kie``) over real HTTP.

The real application runs with the API role only: its HTTP server takes the callbacks,
and no worker runs the woken jobs, so a test sees exactly what a callback did to the jobs
table (a woken job is due now; ``park`` puts it a minute away again). FakeKie creates the
tasks and POSTs their callbacks, signed as KIE signs (``X-Webhook-Timestamp`` and
``X-Webhook-Signature`` over ``{taskId}.{timestamp}``) when it has an HMAC key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lumigram.config import load_settings
from lumigram.db import tables
from lumigram.domain.generation import GenerationRequest
from lumigram.fakes.kie import FakeKie
from lumigram.http.callbacks_in import (
    CallbackRejectedError,
    KieVerifier,
    callback_verifiers,
)
from lumigram.providers.kie import (
    RUNWAY_GEN3,
    VEO3_FAST,
    WAN_T2V,
    KieProvider,
    callback_task_id,
    kie_signature,
)
from lumigram.runtime import BotApplication, Role
from tests.conftest import VALID_TOKEN
from tests.http.test_provider_callbacks import add_job
from tests.providers.test_kie import MP4

KEY = "kie_TEST_callbacks_key_0123456789abcdef"
HMAC_KEY = b"kie-webhook-hmac-key-for-tests"
OTHER_KEY = b"somebody-elses-hmac-key"


class KieApp:
    """The application with the API role, KIE configured against ``fake``."""

    def __init__(self, app: BotApplication, client: httpx.AsyncClient, kie: KieProvider) -> None:
        self.app = app
        self.client = client
        self.kie = kie

    async def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post(
            "/callbacks/kie",
            content=content,
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def add_job(self, task_id: str, **values: Any) -> int:
        return await add_job(
            self.app.sessionmaker,
            provider="kie",
            provider_model=VEO3_FAST,
            model_id="veo3-fast",
            provider_job_id=task_id,
            **values,
        )

    async def next_attempt(self, job_id: int) -> datetime:
        async with self.app.sessionmaker() as session:
            value = await session.scalar(
                select(tables.jobs.c.next_attempt_at).where(tables.jobs.c.id == job_id)
            )
        assert isinstance(value, datetime)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    async def woken(self, job_id: int) -> bool:
        """Whether the job is due now (it was parked a minute away)."""
        return await self.next_attempt(job_id) <= datetime.now(UTC)

    async def park(self, job_id: int) -> None:
        """Put the job's next poll a minute away again."""
        async with self.app.sessionmaker() as session:
            await session.execute(
                tables.jobs.update()
                .where(tables.jobs.c.id == job_id)
                .values(next_attempt_at=datetime.now(UTC) + timedelta(minutes=1))
            )
            await session.commit()


@pytest.fixture
async def fake() -> AsyncIterator[FakeKie]:
    server = FakeKie(api_key=KEY, video=MP4, hmac_key=HMAC_KEY, run_seconds=30.0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_kie_app(database_url: str, tmp_path: Path, fake: FakeKie) -> AsyncIterator[Any]:
    started: list[KieApp] = []

    async def start(hmac_key: bytes | None = HMAC_KEY) -> KieApp:
        secret = {"kie_webhook_hmac_key": hmac_key.decode()} if hmac_key else {}
        config = load_settings(
            bot_token=VALID_TOKEN,
            database_url=database_url,
            http_host="127.0.0.1",
            http_port=0,
            storage_dir=tmp_path / "files",
            kie_api_key=KEY,
            kie_base_url=fake.base_url,
            kie_upload_base_url=fake.base_url,
            **secret,
        )
        app = BotApplication(config, roles=frozenset({Role.API}))
        kie = app.infra.providers.get("kie")
        if kie is None:  # until providers.registry builds it from KIE_API_KEY
            kie = KieProvider(KEY, base_url=fake.base_url, upload_base_url=fake.base_url)
            setattr(kie, "webhook_hmac_key", hmac_key)  # noqa: B010 (not in every version)
            app.infra.providers["kie"] = kie
        assert isinstance(kie, KieProvider)
        assert getattr(kie, "webhook_hmac_key", None) == hmac_key
        server = await app.serve_http()  # the verifiers are built here, from the providers
        await app.prepare()
        kie.callback_url = f"{server.url}/callbacks/kie"
        client = httpx.AsyncClient(base_url=server.url, timeout=10)
        started.append(KieApp(app, client, kie))
        return started[-1]

    yield start
    for running in started:
        await running.client.aclose()
        await running.app.stop()
        await running.app.close()


def signed(task_id: str, *, key: bytes = HMAC_KEY, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": kie_signature(key, task_id, timestamp),
    }


def veo_body(task_id: str) -> dict[str, Any]:
    url = f"https://cdn.example/{task_id}.mp4"
    return {
        "code": 200,
        "msg": "Veo3.1 video generated successfully.",
        "data": {"taskId": task_id, "info": {"resultUrls": [url], "originUrls": [url]}},
    }


def runway_body(task_id: str) -> dict[str, Any]:
    return {
        "code": 200,
        "msg": "All generated successfully.",
        "data": {
            "task_id": task_id,
            "video_id": "vid_1",
            "video_url": f"https://cdn.example/{task_id}.mp4",
            "image_url": f"https://cdn.example/{task_id}.png",
        },
    }


def market_body(task_id: str) -> dict[str, Any]:
    result = json.dumps({"resultUrls": [f"https://cdn.example/{task_id}.mp4"]})
    return {
        "code": 200,
        "msg": "success",
        "data": {"taskId": task_id, "state": "success", "resultJson": result},
    }


def aleph_body(task_id: str) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "taskId": task_id, "data": {"result_video_url": "u"}}


async def wait_for_delivery(fake: FakeKie, count: int = 1, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while len(fake.callback_attempts) < count:  # noqa: ASYNC110 (the fake's task)
            await asyncio.sleep(0.02)


def changed(signature: str) -> str:
    return ("B" if signature[0] == "A" else "A") + signature[1:]


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 401


# --- the whole application --------------------------------------------------------------


@pytest.mark.parametrize("model", [VEO3_FAST, RUNWAY_GEN3, WAN_T2V])
async def test_the_signed_callback_from_kie_wakes_the_job(
    start_kie_app: Any, fake: FakeKie, model: str
) -> None:
    kie_app: KieApp = await start_kie_app()
    fake.slow_next(1.0)  # time enough to put the job in the table first
    status = await kie_app.kie.submit(GenerationRequest(model=model, prompt="a lighthouse"))
    task_id = status.provider_job_id
    assert task_id is not None
    assert fake.tasks[task_id].body["callBackUrl"] == f"{kie_app.client.base_url}/callbacks/kie"
    job_id = await kie_app.add_job(task_id)
    assert not fake.callback_attempts, "the callback came before the job was stored"
    assert not await kie_app.woken(job_id)

    await wait_for_delivery(fake)
    [attempt] = fake.callback_attempts
    assert attempt.status == 200
    assert "X-Webhook-Signature" in attempt.headers
    assert callback_task_id(json.loads(attempt.body)) == task_id
    assert await kie_app.woken(job_id)

    # The same callback again (a replay inside the window): answered, nothing woken.
    await kie_app.park(job_id)
    again = await kie_app.post(attempt.body, attempt.headers)
    assert again.status_code == 200
    assert again.json() == {"ok": True, "job": None}
    assert not await kie_app.woken(job_id)


async def test_forged_stale_and_unsigned_callbacks_are_refused_and_wake_nothing(
    start_kie_app: Any,
) -> None:
    kie_app: KieApp = await start_kie_app()
    job_id = await kie_app.add_job("veo_task_1")
    other_job = await kie_app.add_job("veo_task_2")
    body = veo_body("veo_task_1")
    now = time.time()
    good = signed("veo_task_1")
    refused: list[tuple[str, dict[str, str]]] = [
        ("another key", signed("veo_task_1", key=OTHER_KEY)),
        ("no headers", {}),
        ("no signature", {"X-Webhook-Timestamp": good["X-Webhook-Timestamp"]}),
        ("no timestamp", {"X-Webhook-Signature": good["X-Webhook-Signature"]}),
        ("stale", signed("veo_task_1", at=now - 6 * 60)),
        ("future", signed("veo_task_1", at=now + 6 * 60)),
        ("another task's", signed("veo_task_2")),
        ("not base64", {**good, "X-Webhook-Signature": "not base64!!"}),
        ("not unix seconds", {**good, "X-Webhook-Timestamp": f"{now:.3f}"}),
        ("a changed byte", {**good, "X-Webhook-Signature": changed(good["X-Webhook-Signature"])}),
    ]
    for what, headers in refused:
        answer = await kie_app.post(body, headers)
        assert answer.status_code == 401, what
        assert_refused(answer)
    # The other task's genuine signature does not sign this body's task either.
    assert_refused(await kie_app.post(veo_body("veo_task_1"), signed("veo_task_2")))
    assert_refused(await kie_app.post(b"not json", good))  # no task id: nothing is signed
    assert not await kie_app.woken(job_id)
    assert not await kie_app.woken(other_job)

    # The genuine one: woken. Its replay: answered, not woken twice.
    genuine = await kie_app.post(body, good)
    assert genuine.status_code == 200
    assert genuine.json() == {"ok": True, "job": job_id}
    assert await kie_app.woken(job_id)
    await kie_app.park(job_id)
    replay = await kie_app.post(body, good)
    assert replay.status_code == 200
    assert replay.json() == {"ok": True, "job": None}
    assert not await kie_app.woken(job_id)
    assert not await kie_app.woken(other_job)


@pytest.mark.parametrize(
    "shape",
    [veo_body, runway_body, market_body, aleph_body],
    ids=["veo", "runway", "market", "runway-aleph"],
)
async def test_each_familys_callback_body_names_the_task(start_kie_app: Any, shape: Any) -> None:
    kie_app: KieApp = await start_kie_app()
    job_id = await kie_app.add_job("task_of_the_family")
    body = shape("task_of_the_family")
    assert callback_task_id(body) == "task_of_the_family"
    answer = await kie_app.post(body, signed("task_of_the_family"))
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "job": job_id}
    assert await kie_app.woken(job_id)


async def test_the_fakes_callback_bodies_per_family(start_kie_app: Any, fake: FakeKie) -> None:
    """FakeKie's documented bodies (lost on the way, posted here by the test)."""
    kie_app: KieApp = await start_kie_app()
    for model in (VEO3_FAST, RUNWAY_GEN3, WAN_T2V):
        fake.lose_callbacks()
        status = await kie_app.kie.submit(GenerationRequest(model=model, prompt="p"))
        task_id = status.provider_job_id
        assert task_id is not None
        job_id = await kie_app.add_job(task_id)
        body = fake.callback_body(fake.tasks[task_id], claim_success=True)
        timestamp = str(int(time.time()))
        headers = {
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": fake.sign(task_id, timestamp),
        }
        answer = await kie_app.post(body, headers)
        assert answer.status_code == 200, model
        assert answer.json() == {"ok": True, "job": job_id}, model
        assert await kie_app.woken(job_id)


async def test_unknown_and_ended_tasks_are_answered_without_a_job(start_kie_app: Any) -> None:
    kie_app: KieApp = await start_kie_app()
    unknown = await kie_app.post(veo_body("not_ours"), signed("not_ours"))
    assert unknown.status_code == 200
    assert unknown.json() == {"ok": True, "job": None}  # so KIE is done with it
    await kie_app.add_job("ended_task", status="succeeded")
    ended = await kie_app.post(veo_body("ended_task"), signed("ended_task"))
    assert ended.status_code == 200
    assert ended.json() == {"ok": True, "job": None}


async def test_without_an_hmac_key_a_callback_is_a_hint(start_kie_app: Any, fake: FakeKie) -> None:
    fake.hmac_key = None  # the account has no webhookHmacKey: KIE signs nothing
    kie_app: KieApp = await start_kie_app(hmac_key=None)
    fake.slow_next(1.0)
    status = await kie_app.kie.submit(GenerationRequest(model=RUNWAY_GEN3, prompt="a dune"))
    task_id = status.provider_job_id
    assert task_id is not None
    job_id = await kie_app.add_job(task_id)
    await wait_for_delivery(fake)
    [attempt] = fake.callback_attempts
    assert "X-Webhook-Signature" not in attempt.headers
    assert attempt.status == 200
    assert await kie_app.woken(job_id)  # the worker polls KIE, which has the say

    # Posted by anyone, signed or not: one more poll of the job at most.
    await kie_app.park(job_id)
    hint = await kie_app.post(runway_body(task_id), {"X-Webhook-Signature": "junk"})
    assert hint.json() == {"ok": True, "job": job_id}
    assert await kie_app.woken(job_id)
    nameless = await kie_app.post({"code": 200, "data": {}})
    assert nameless.status_code == 200
    assert nameless.json() == {"ok": True, "job": None}


# --- the parts ----------------------------------------------------------------------------


def test_the_kie_verifier_is_built_for_a_provider_with_the_attribute() -> None:
    keyed = SimpleNamespace(webhook_hmac_key=HMAC_KEY)
    unsigned = SimpleNamespace(webhook_hmac_key=None)
    verifiers = callback_verifiers({"kie": keyed})
    assert verifiers.keys() == {"kie"}
    assert isinstance(verifiers["kie"], KieVerifier)
    assert verifiers["kie"].signed
    plain = callback_verifiers({"kie": unsigned})["kie"]
    assert isinstance(plain, KieVerifier)
    assert not plain.signed
    assert callback_verifiers({"kie": object()}) == {}
    assert callback_verifiers({"other": keyed}) == {}


async def test_the_replay_memory_is_bounded_and_forgets_after_the_window() -> None:
    now = [1_700_000_000.0]
    verifier = KieVerifier(HMAC_KEY, clock=lambda: now[0], replay_capacity=2)

    def headers(task_id: str, at: float) -> dict[str, str]:
        return signed(task_id, at=at)  # mixed-case names, as KIE sends them

    def body(task_id: str) -> bytes:
        return json.dumps(veo_body(task_id)).encode()

    first = headers("t1", now[0])
    assert await verifier.verify(first, body("t1")) == "t1"
    assert await verifier.verify(first, body("t1")) is None  # a replay
    assert await verifier.verify(headers("t1", now[0] - 1), body("t1")) == "t1"  # another one
    assert await verifier.verify(headers("t2", now[0]), body("t2")) == "t2"
    assert await verifier.verify(headers("t3", now[0]), body("t3")) == "t3"
    assert len(verifier._seen) == 2  # the oldest made room
    now[0] += 301  # the window is over: the first is too old now, and is forgotten
    with pytest.raises(CallbackRejectedError):
        await verifier.verify(first, body("t1"))
    assert await verifier.verify(headers("t4", now[0]), body("t4")) == "t4"
    assert list(verifier._seen) == [("t4", str(int(now[0])))]
