"""The API's parts on their own: URL rules, the rate limiter, signing, the callbacks'
retries (against a real local HTTP server and a closed port)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.db.repositories.audit import AuditRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.domain.jobs import Channel, Job, JobEvent, JobEventKind, JobStatus, ResultFile
from lumigram.http.callbacks_out import ApiCallbacks, sign
from lumigram.http.problems import ProblemError
from lumigram.http.ratelimit import RateLimitedError, RateLimiter
from lumigram.http.routes.v1 import bearer_token
from lumigram.http.routes.v1_requests import (
    GenerationRequest,
    check_url,
    private_host,
    request_hash,
    shown_url,
)
from lumigram.services.api_keys import ApiKeyService, CreatedKey
from lumigram.services.users import Contact, UserPolicy, UserService
from tests.http.test_api import LocalWeb


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "api.localhost",
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_private_hosts_are_recognised(host: str) -> None:
    assert private_host(host)


@pytest.mark.parametrize("host", ["example.com", "93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_hosts_are_not_private(host: str) -> None:
    assert not private_host(host)


def test_check_url_refuses_what_it_should() -> None:
    assert check_url("https://example.com/hook?x=1", "callback_url", allow_private=False)
    for url in (
        "ftp://example.com/a",
        "file:///etc/passwd",
        "https://",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://example.com:99999/",
        "https://example.com/" + "a" * 2000,
    ):
        with pytest.raises(ProblemError) as caught:
            check_url(url, "callback_url", allow_private=False)
        assert caught.value.status == 422
        assert caught.value.detail.startswith("callback_url")
    assert check_url("http://127.0.0.1:9/hook", "callback_url", allow_private=True)


def test_shown_url_drops_credentials_query_and_fragment() -> None:
    url = "https://user:pw@example.com:8443/hook?token=secret#x"
    assert shown_url(url) == "https://example.com:8443/hook"


def test_request_hash_is_canonical() -> None:
    one = GenerationRequest(prompt="a", settings={"seed": 1, "aspect_ratio": "1:1"})
    two = GenerationRequest(prompt="a", settings={"aspect_ratio": "1:1", "seed": 1})
    assert request_hash(one, "demo", []) == request_hash(two, "demo", [])
    assert request_hash(one, "demo", []) != request_hash(one, "demo", [b"png"])
    assert request_hash(one, "demo", []) != request_hash(one, "other", [])


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer lg_abc") == "lg_abc"
    assert bearer_token("bearer   lg_abc ") == "lg_abc"
    for header in (None, "", "Basic abc", "Bearer", "Bearer a b", "lg_abc"):
        with pytest.raises(ProblemError) as caught:
            bearer_token(header)
        assert caught.value.status == 401
        assert caught.value.headers["WWW-Authenticate"].startswith('Bearer realm="lumigram"')


def test_the_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=6, burst=2, clock=lambda: now[0])  # a token per 10 s
    limiter.check(1)
    limiter.check(1)
    with pytest.raises(RateLimitedError) as caught:
        limiter.check(1)
    assert caught.value.retry_after == 10
    assert caught.value.headers == {"Retry-After": "10"}
    limiter.check(2)  # another key has its own bucket
    now[0] = 4.0
    with pytest.raises(RateLimitedError) as caught:
        limiter.check(1)
    assert caught.value.retry_after == 6
    now[0] = 10.0
    limiter.check(1)
    now[0] = 1000.0  # refilled to the burst, no more
    limiter.check(1)
    limiter.check(1)
    with pytest.raises(RateLimitedError):
        limiter.check(1)


def test_the_signature_is_the_documented_hmac() -> None:
    body = b'{"id":1}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_x", 1700000000, body) == f"t=1700000000,v1={expected}"


# --- ApiCallbacks against real HTTP ------------------------------------------------------
@pytest.fixture
def web() -> Iterator[LocalWeb]:
    local = LocalWeb()
    local.start()
    yield local
    local.stop()


async def make_key(sessionmaker: async_sessionmaker[AsyncSession]) -> CreatedKey:
    async with sessionmaker() as session:
        users = UserService(
            UserRepository(session), AuditRepository(session), session, UserPolicy()
        )
        await users.register_contact(Contact(42, "Ann"))
        return await ApiKeyService(ApiKeyRepository(session), session).create(42)


def job_for(key: CreatedKey, url: str, status: JobStatus = JobStatus.RUNNING) -> Job:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return Job(
        user_id=42,
        language="en",
        model_id="demo",
        provider="demo",
        provider_model="demo-art",
        mode="custom",
        prompt="a fox",
        final_prompt="a fox",
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
        settings={"aspect_ratio": "1:1", "coloring": False},
        channel=Channel.API,
        reply_to=str(key.key.id),
        api_key_id=key.key.id,
        callback_url=url,
        status=status,
        id=7,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_callbacks_retry_5xx_and_stop_at_4xx(
    sessionmaker: async_sessionmaker[AsyncSession], web: LocalWeb
) -> None:
    key = await make_key(sessionmaker)
    callbacks = ApiCallbacks(
        sessionmaker, public_base_url="https://bot.example", retry_delays=(0.01, 0.02)
    )
    result = ResultFile("results/7/0.png", "image/png", 64, 64)
    event = JobEvent(JobEventKind.SUCCEEDED, job_for(key, f"{web.url}/hook"), ((result, b"x"),))

    web.answers = [503, 500, 500]  # every try fails: three tries, no exception
    await callbacks.publish(event)
    await callbacks.drain()  # sent in the background
    assert len(web.received) == 3
    web.received.clear()
    web.answers = [500, 200]
    await callbacks.publish(event)
    await callbacks.drain()  # sent in the background
    assert len(web.received) == 2
    headers, body, _ = web.received[-1]
    payload = json.loads(body)
    assert payload["status"] == "succeeded"
    assert payload["progress"] == 1.0
    assert payload["files"] == [
        {
            "index": 1,
            "url": "https://bot.example/v1/generations/7/files/1",
            "mime_type": "image/png",
            "width": 64,
            "height": 64,
        }
    ]
    assert payload["settings"] == {"aspect_ratio": "1:1"}
    timestamp = int(headers["Lumigram-Signature"].split(",")[0].removeprefix("t="))
    assert headers["Lumigram-Signature"] == sign(key.signing_secret, timestamp, body)
    web.received.clear()
    web.answers = [410]  # a 4xx is not tried again
    await callbacks.publish(event)
    await callbacks.drain()  # sent in the background
    assert len(web.received) == 1

    # Progress events are not posted; a job without a callback_url neither.
    web.received.clear()
    await callbacks.publish(JobEvent(JobEventKind.PROGRESSED, event.job))
    await callbacks.drain()  # sent in the background
    plain = job_for(key, f"{web.url}/hook")
    plain.callback_url = None
    await callbacks.publish(JobEvent(JobEventKind.FAILED, plain))
    await callbacks.drain()  # sent in the background
    assert web.received == []
    await callbacks.aclose()


async def test_callbacks_survive_a_dead_receiver(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    key = await make_key(sessionmaker)
    callbacks = ApiCallbacks(sessionmaker, public_base_url=None, retry_delays=(0.01, 0.01))
    url = f"http://127.0.0.1:{free_port()}/hook?token=secret"
    job = job_for(key, url, JobStatus.FAILED)
    job.error_class = "safety"
    await callbacks.publish(JobEvent(JobEventKind.FAILED, job))  # never raises
    await callbacks.drain()  # sent in the background
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("after 3 tries" in message for message in warnings)
    assert all("secret" not in message for message in warnings)
    await callbacks.aclose()
