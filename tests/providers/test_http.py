"""ProviderHTTP (retries, classification, capped downloads) and FakeServer behaviour."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.generation import ErrorKind, ProviderError
from lumigram.domain.media import sniff_media_type
from lumigram.fakes.base import FakeServer, Fault, RateLimit, sample_image
from lumigram.providers.http import (
    ProviderHTTP,
    RetryPolicy,
    check_media,
    parse_retry_after,
)

KEY = "sk-test-SECRET-0123456789"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


class EchoFake(FakeServer):
    """A minimal provider: JSON at /ok, files of several kinds under /files/."""

    provider = "echo"

    def __init__(self) -> None:
        super().__init__(api_key=KEY, slow_seconds=1.0)
        self.png = sample_image()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ok", self._ok)
        app.router.add_get("/files/image.png", self._image)
        app.router.add_get("/files/text", self._text)
        app.router.add_get("/files/chunked", self._chunked)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _image(self, request: web.Request) -> web.Response:
        return web.Response(body=self.png, content_type="image/png")

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="definitely not an image", content_type="image/png")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        # No Content-Length: the cap has to be enforced while streaming.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(self.png)
        for _ in range(8):
            await response.write(b"\0" * 4096)
        await response.write_eof()
        return response


@pytest.fixture
async def fake() -> AsyncIterator[EchoFake]:
    server = EchoFake()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http(fake: EchoFake) -> AsyncIterator[ProviderHTTP]:
    client = ProviderHTTP(
        "echo",
        base_url=fake.base_url,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=0.5,
        retry=FAST,
    )
    yield client
    await client.aclose()


def assert_no_key(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    if isinstance(error, ProviderError):
        assert KEY not in (error.user_reason or "")


# --- retries and classification ------------------------------------------------


async def test_success(http: ProviderHTTP, fake: EchoFake) -> None:
    response = await http.request("GET", "/ok")
    assert response.json() == {"ok": True}
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.UNAVAILABLE])
async def test_retry_after_is_honoured(http: ProviderHTTP, fake: EchoFake, fault: Fault) -> None:
    fake.retry_after_seconds = 1
    fake.inject(fault)
    started = time.monotonic()
    response = await http.request("GET", "/ok")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.9 <= elapsed < 2.0  # waited the Retry-After, not the tiny back-off
    assert len(fake.requests) == 2


async def test_retry_after_is_capped_by_policy(fake: EchoFake) -> None:
    fake.retry_after_seconds = 30
    fake.inject(Fault.RATE_LIMIT)
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_retry_after=0.2)
    client = ProviderHTTP(
        "echo", base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}, retry=policy
    )
    try:
        started = time.monotonic()
        await client.request("GET", "/ok")
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_server_error_then_success(http: ProviderHTTP, fake: EchoFake) -> None:
    fake.inject(Fault.SERVER_ERROR)
    response = await http.request("GET", "/ok")
    assert response.status_code == 200
    assert len(fake.requests) == 2


async def test_attempts_exhausted_is_transient(http: ProviderHTTP, fake: EchoFake) -> None:
    fake.inject(Fault.SERVER_ERROR, Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    with pytest.raises(ProviderError) as caught:
        await http.request("GET", "/ok")
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert caught.value.status_code == 500
    assert len(fake.requests) == FAST.attempts
    assert_no_key(caught.value)


@pytest.mark.parametrize("fault", [Fault.PAYMENT_REQUIRED, Fault.UNAUTHORIZED])
async def test_payment_and_auth_are_unavailable_without_retry(
    http: ProviderHTTP, fake: EchoFake, fault: Fault
) -> None:
    fake.inject(fault)
    with pytest.raises(ProviderError) as caught:
        await http.request("GET", "/ok")
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert len(fake.requests) == 1
    assert_no_key(caught.value)


async def test_wrong_key_is_unavailable(fake: EchoFake) -> None:
    client = ProviderHTTP(
        "echo", base_url=fake.base_url, headers={"Authorization": "Bearer nope"}, retry=FAST
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.request("GET", "/ok")
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 401


async def test_hang_times_out_as_transient(http: ProviderHTTP, fake: EchoFake) -> None:
    fake.inject(Fault.HANG, Fault.HANG, Fault.HANG)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await http.request("GET", "/ok")
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert time.monotonic() - started < FAST.attempts * 0.5 + 1.0
    assert_no_key(caught.value)


async def test_slow_answer_within_timeout(fake: EchoFake) -> None:
    fake.slow_seconds = 0.2
    fake.inject(Fault.SLOW)
    client = ProviderHTTP(
        "echo",
        base_url=fake.base_url,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=2.0,
        retry=FAST,
    )
    try:
        started = time.monotonic()
        response = await client.request("GET", "/ok")
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.2
    finally:
        await client.aclose()


async def test_network_error_is_transient() -> None:
    # Nothing listens on port 9 of localhost (discard): connection refused.
    client = ProviderHTTP(
        "echo",
        base_url="http://127.0.0.1:9",
        headers={"Authorization": f"Bearer {KEY}"},
        retry=FAST,
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.request("GET", "/ok")
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert_no_key(caught.value)


async def test_classifier_sees_errors_first(http: ProviderHTTP, fake: EchoFake) -> None:
    fake.inject(Fault.SERVER_ERROR)

    def classify(response: httpx.Response) -> ProviderError:
        return ProviderError(ErrorKind.SAFETY, "custom", status_code=response.status_code)

    with pytest.raises(ProviderError) as caught:
        await http.request("GET", "/ok", classify=classify)
    assert caught.value.kind is ErrorKind.SAFETY
    assert len(fake.requests) == 1


# --- downloads ---------------------------------------------------------------


async def test_download_image(http: ProviderHTTP, fake: EchoFake) -> None:
    data = await http.download(fake.url("/files/image.png"))
    assert data == fake.png


async def test_download_rejects_non_image(http: ProviderHTTP, fake: EchoFake) -> None:
    with pytest.raises(ProviderError) as caught:
        await http.download(fake.url("/files/text"))
    assert caught.value.kind is ErrorKind.INVALID_INPUT


async def test_download_cap_by_content_length(fake: EchoFake) -> None:
    client = ProviderHTTP(
        "echo", base_url=fake.base_url, retry=FAST, max_download_bytes=len(fake.png) - 1
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.download(fake.url("/files/image.png"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert "limit" in str(caught.value)


async def test_download_cap_while_streaming(fake: EchoFake) -> None:
    client = ProviderHTTP(
        "echo", base_url=fake.base_url, retry=FAST, max_download_bytes=len(fake.png) + 1000
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.download(fake.url("/files/chunked"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.INVALID_INPUT


async def test_download_retries_transient(http: ProviderHTTP, fake: EchoFake) -> None:
    fake.inject(Fault.SERVER_ERROR)
    assert await http.download(fake.url("/files/image.png")) == fake.png
    assert len(fake.requests) == 2


async def test_download_not_found_is_not_retried(http: ProviderHTTP, fake: EchoFake) -> None:
    with pytest.raises(ProviderError) as caught:
        await http.download(fake.url("/files/missing.png"))
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert len(fake.requests) == 1


# --- FakeServer ------------------------------------------------------------------


async def test_fake_rejects_wrong_key_and_records(fake: EchoFake) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.get("/ok", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert fake.requests[0].path == "/ok"
    assert fake.requests[0].headers["Authorization"] == "Bearer wrong"


async def test_fake_files_need_no_key(fake: EchoFake) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.get("/files/image.png")
    assert response.status_code == 200


async def test_fake_faults_are_consumed_in_order(fake: EchoFake) -> None:
    fake.retry_after_seconds = 3
    fake.inject(Fault.RATE_LIMIT, Fault.PAYMENT_REQUIRED, Fault.MALFORMED)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        first = await client.get("/ok")
        second = await client.get("/ok")
        third = await client.get("/ok")
        fourth = await client.get("/ok")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert second.status_code == 402
    assert third.status_code == 200
    assert not third.headers["Content-Type"].startswith("application/json")
    assert fourth.json() == {"ok": True}


async def test_fake_rate_limit(fake: EchoFake) -> None:
    fake.rate_limit = RateLimit(requests=2, per_seconds=10)
    async with httpx.AsyncClient(
        base_url=fake.base_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        statuses = [(await client.get("/ok")).status_code for _ in range(3)]
        limited = await client.get("/ok")
    assert statuses == [200, 200, 429]
    assert int(limited.headers["Retry-After"]) >= 1


# --- pure helpers ------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = datetime.now(UTC) + timedelta(seconds=30)
    seconds = parse_retry_after(format_datetime(future, usegmt=True))
    assert seconds is not None
    assert 25 <= seconds <= 31


@given(st.integers(min_value=1, max_value=50))
def test_backoff_stays_under_the_ceiling(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=20.0)
    delay = policy.backoff(attempt)
    assert 0 <= delay <= min(20.0, 0.5 * 2 ** (attempt - 1))


def test_sniff_and_check_media() -> None:
    assert sniff_media_type(sample_image(fmt="PNG")) == "image/png"
    assert sniff_media_type(sample_image(fmt="JPEG")) == "image/jpeg"
    assert sniff_media_type(sample_image(fmt="WEBP")) == "image/webp"
    assert sniff_media_type(b"<html>") is None
    with pytest.raises(ProviderError):
        check_media("x", b"\x00\x00\x00\x18ftypmp42")  # a video where only images are allowed
    assert check_media("x", b"\x00\x00\x00\x18ftypmp42", accept_video=True) == "video/mp4"
