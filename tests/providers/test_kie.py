"""KieProvider against FakeKie over real HTTP, plus the callback signature rules."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    OutputKind,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
)
from lumigram.fakes.base import Fault, sample_image
from lumigram.fakes.kie import FakeKie
from lumigram.providers.http import RetryPolicy
from lumigram.providers.kie import (
    EXPIRED_USER_REASON,
    GENERATION_FAILED_USER_REASON,
    IMAGE_FETCH_USER_REASON,
    KLING_I2V,
    RUNWAY_GEN3,
    SAFETY_USER_REASON,
    UNAVAILABLE_USER_REASON,
    VEO3_FAST,
    WAN_I2V,
    WAN_T2V,
    Family,
    KieProvider,
    callback_task_id,
    kie_signature,
    verify_kie_signature,
)
from lumigram.services.ports import ImageProvider

KEY = "kie_TEST_SECRET_KEY_0123456789abcdef"
HMAC_KEY = b"webhook-hmac-key-for-tests"
NO_RETRY = RetryPolicy(attempts=1)
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=0.05)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def small_mp4() -> bytes:
    """A minimal ISO BMFF file (ftyp + moov/mvhd + mdat), built here because PyAV is not
    installed in this environment; it is an MP4 container, not a playable video."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">IIIII", 0, 0, 0, 1000, 1000)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + matrix
        + bytes(24)
        + struct.pack(">I", 1),
    )
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", b"\x00" * 64)


MP4 = small_mp4()


@pytest.fixture
async def fake() -> AsyncIterator[FakeKie]:
    server = FakeKie(api_key=KEY, video=MP4, hmac_key=HMAC_KEY)
    await server.start()
    yield server
    await server.stop()


def make_client(fake: FakeKie, **kwargs: Any) -> KieProvider:
    options: dict[str, Any] = {"timeout": 5.0, "retry": FAST}
    options.update(kwargs)
    return KieProvider(KEY, base_url=fake.base_url, upload_base_url=fake.base_url, **options)


@pytest.fixture
async def client(fake: FakeKie) -> AsyncIterator[KieProvider]:
    provider = make_client(fake)
    yield provider
    await provider.aclose()


def photo(seed: int = 1, size: int = 32) -> ReferenceImage:
    return ReferenceImage(data=sample_image(size, size, "PNG", seed), mime_type="image/png")


def created_body(fake: FakeKie, path: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        [r for r in fake.requests if r.method == "POST" and r.path == path][-1].body
    )
    return body


async def wait_until_done(client: KieProvider, job: str, timeout: float = 5.0) -> list[str]:
    """Poll until terminal; the family's state words seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = await client.poll_task(job)
        if not seen or seen[-1] != task.provider_state:
            seen.append(task.provider_state)
        if task.state.terminal:
            return seen
        await asyncio.sleep(0.03)
    raise AssertionError(f"task {job} did not finish: {seen}")


# --- interface --------------------------------------------------------------------------


async def test_is_an_image_provider_for_video_models(client: KieProvider) -> None:
    assert isinstance(client, ImageProvider)
    assert client.name == "kie"
    assert set(client.models()) == {VEO3_FAST, RUNWAY_GEN3, WAN_T2V, WAN_I2V, KLING_I2V}
    assert all(caps.outputs == {OutputKind.VIDEO} for caps in client.models().values())
    assert client.capabilities(VEO3_FAST).aspect_ratios[:2] == ("16:9", "9:16")
    with pytest.raises(KeyError):
        client.capabilities("nope")
    with pytest.raises(ValueError, match="API key"):
        KieProvider("")


# --- each family: create, poll, fetch ---------------------------------------------------


async def test_veo_text_to_video(client: KieProvider, fake: FakeKie) -> None:
    status = await client.submit(
        GenerationRequest(model=VEO3_FAST, prompt="a lighthouse at dusk", aspect_ratio="9:16")
    )
    assert status.state is TaskState.QUEUED
    job = status.provider_job_id
    assert job is not None
    assert job in fake.tasks
    assert created_body(fake, "/api/v1/veo/generate") == {
        "prompt": "a lighthouse at dusk",
        "model": "veo3_fast",
        "aspect_ratio": "9:16",
        "generationType": "TEXT_2_VIDEO",
    }
    polled = await client.poll(job)
    assert polled.state is TaskState.SUCCEEDED
    assert polled.outputs[0].mime_type == "video/mp4"
    assert await client.fetch(polled.outputs[0]) == MP4

    create = next(r for r in fake.requests if r.path == "/api/v1/veo/generate")
    assert create.headers["Authorization"] == f"Bearer {KEY}"
    record = next(r for r in fake.requests if r.path == "/api/v1/veo/record-info")
    assert record.method == "GET"
    download = fake.requests[-1]
    assert download.path.startswith("/files/results/")
    assert "Authorization" not in download.headers  # the CDN never sees the key


async def test_veo_image_to_video_uploads_the_photo_first(
    client: KieProvider, fake: FakeKie
) -> None:
    reference = photo()
    status = await client.submit(
        GenerationRequest(model=VEO3_FAST, prompt="make it move", references=(reference,))
    )
    assert status.provider_job_id is not None
    paths = [r.path for r in fake.requests]
    assert paths.index("/api/file-base64-upload") < paths.index("/api/v1/veo/generate")
    body = created_body(fake, "/api/v1/veo/generate")
    assert body["generationType"] == "FIRST_AND_LAST_FRAMES_2_VIDEO"
    (url,) = body["imageUrls"]
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).content == reference.data
    assert (await client.poll(status.provider_job_id)).state is TaskState.SUCCEEDED


async def test_runway_states_progress_to_success(client: KieProvider, fake: FakeKie) -> None:
    fake.slow_next(0.5)
    status = await client.submit(
        GenerationRequest(
            model=RUNWAY_GEN3,
            prompt="a cat dancing",
            aspect_ratio="1:1",
            extra={"duration": 10, "resolution": "720p"},
        )
    )
    job = status.provider_job_id
    assert job is not None
    assert created_body(fake, "/api/v1/runway/generate") == {
        "prompt": "a cat dancing",
        "duration": 10,
        "quality": "720p",
        "waterMark": "",
        "aspectRatio": "1:1",
    }
    first = await client.poll(job)
    assert first.state is TaskState.QUEUED
    seen = await wait_until_done(client, job)
    assert seen[0] in ("wait", "queueing")
    assert "generating" in seen
    assert seen[-1] == "success"
    final = await client.poll(job)
    assert final.state is TaskState.SUCCEEDED
    assert await client.fetch(final.outputs[0]) == MP4


async def test_runway_with_image_needs_no_aspect_ratio(client: KieProvider, fake: FakeKie) -> None:
    await client.submit(GenerationRequest(model=RUNWAY_GEN3, prompt="p", references=(photo(),)))
    body = created_body(fake, "/api/v1/runway/generate")
    assert "aspectRatio" not in body
    assert body["imageUrl"].startswith(fake.url("/files/uploads/"))


async def test_runway_ten_seconds_at_1080p_is_refused_before_any_call(
    client: KieProvider, fake: FakeKie
) -> None:
    request = GenerationRequest(
        model=RUNWAY_GEN3, prompt="p", extra={"duration": 10, "resolution": "1080p"}
    )
    with pytest.raises(ProviderError) as caught:
        await client.submit(request)
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.user_reason
    assert fake.requests == []


@pytest.mark.parametrize(
    ("model", "with_image", "expected_input"),
    [
        (WAN_T2V, False, {"prompt": "p", "resolution": "480p", "aspect_ratio": "16:9"}),
        (WAN_I2V, True, {"prompt": "p", "resolution": "480p"}),
        (KLING_I2V, True, {"prompt": "p", "duration": "10"}),
    ],
)
async def test_market_models(
    client: KieProvider,
    fake: FakeKie,
    model: str,
    with_image: bool,
    expected_input: dict[str, Any],
) -> None:
    extra: dict[str, Any] = {"duration": 10} if model == KLING_I2V else {"resolution": "480p"}
    request = GenerationRequest(
        model=model, prompt="p", references=(photo(),) if with_image else (), extra=extra
    )
    status = await client.submit(request)
    body = created_body(fake, "/api/v1/jobs/createTask")
    assert body["model"] == model
    model_input = dict(body["input"])
    if with_image:
        assert model_input.pop("image_url").startswith(fake.url("/files/uploads/"))
    assert model_input == expected_input
    assert status.provider_job_id is not None
    polled = await client.poll(status.provider_job_id)
    assert polled.state is TaskState.SUCCEEDED  # resultJson, a JSON string, was parsed
    assert await client.fetch(polled.outputs[0]) == MP4


async def test_market_states(client: KieProvider, fake: FakeKie) -> None:
    fake.slow_next(0.5)
    status = await client.submit(GenerationRequest(model=WAN_T2V, prompt="p"))
    assert status.provider_job_id is not None
    seen = await wait_until_done(client, status.provider_job_id)
    assert seen[0] in ("waiting", "queuing")
    assert "generating" in seen
    assert seen[-1] == "success"


async def test_image_to_video_models_require_a_photo(client: KieProvider, fake: FakeKie) -> None:
    for model in (WAN_I2V, KLING_I2V):
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=model, prompt="p"))
        assert caught.value.kind is ErrorKind.INVALID_INPUT
    with pytest.raises(ProviderError):
        await client.submit(GenerationRequest(model="kie/unknown", prompt="p"))
    assert fake.requests == []


async def test_a_restarted_client_finds_the_family_by_task_id(fake: FakeKie) -> None:
    first = make_client(fake)
    try:
        status = await first.submit(GenerationRequest(model=RUNWAY_GEN3, prompt="p"))
    finally:
        await first.aclose()
    assert status.provider_job_id is not None
    fake.requests.clear()
    second = make_client(fake)
    try:
        polled = await second.poll(status.provider_job_id)
        assert polled.state is TaskState.SUCCEEDED
        assert [r.path for r in fake.requests] == [
            "/api/v1/veo/record-info",  # "recordInfo is null": not a Veo task
            "/api/v1/runway/record-detail",
        ]
        await second.poll(status.provider_job_id)  # remembered from now on
        assert fake.requests[-1].path == "/api/v1/runway/record-detail"
        with pytest.raises(ProviderError) as caught:
            await second.poll("no-such-task")
        assert caught.value.kind is ErrorKind.INVALID_INPUT
    finally:
        await second.aclose()


async def test_cancel_is_a_no_op(client: KieProvider, fake: FakeKie) -> None:
    await client.cancel("any-task")
    assert fake.requests == []


async def test_credits(client: KieProvider, fake: FakeKie) -> None:
    fake.credits = 321
    assert await client.credits() == 321


# --- error codes ---------------------------------------------------------------------------

EXPECTED_KINDS = {
    400: ErrorKind.SAFETY,  # the default 400 text is KIE's content-policy message
    401: ErrorKind.UNAVAILABLE,
    402: ErrorKind.UNAVAILABLE,
    408: ErrorKind.TRANSIENT,
    429: ErrorKind.TRANSIENT,
    451: ErrorKind.INVALID_INPUT,
    455: ErrorKind.TRANSIENT,
    500: ErrorKind.TRANSIENT,
    501: ErrorKind.INVALID_INPUT,
    505: ErrorKind.UNAVAILABLE,
}
USER_REASONS = {
    400: SAFETY_USER_REASON,
    401: UNAVAILABLE_USER_REASON,
    402: UNAVAILABLE_USER_REASON,
    451: IMAGE_FETCH_USER_REASON,
    501: GENERATION_FAILED_USER_REASON,
    505: UNAVAILABLE_USER_REASON,
}


@pytest.mark.parametrize("code", sorted(EXPECTED_KINDS))
async def test_error_code_mapping(fake: FakeKie, code: int) -> None:
    """Each code, on a create and on a poll, as an HTTP status and inside a 200 body."""
    client = make_client(fake, retry=NO_RETRY)
    try:
        created = await client.submit(GenerationRequest(model=WAN_T2V, prompt="p"))
        job = created.provider_job_id
        assert job is not None
        for on in ("create", "poll"):
            for in_body in (False, True):
                fake.fail_next(code, on=on, in_body=in_body)
                with pytest.raises(ProviderError) as caught:
                    await (
                        client.submit(GenerationRequest(model=WAN_T2V, prompt="p"))
                        if on == "create"
                        else client.poll(job)
                    )
                error = caught.value
                assert error.kind is EXPECTED_KINDS[code], (on, in_body)
                assert error.status_code == code
                if code in USER_REASONS:
                    assert error.user_reason == USER_REASONS[code]
                assert KEY not in str(error)
    finally:
        await client.aclose()
    assert len(fake.tasks) == 1  # no failed create started a task


async def test_a_plain_400_is_invalid_input_with_the_reason(fake: FakeKie) -> None:
    client = make_client(fake, retry=NO_RETRY)
    fake.fail_next(400, in_body=True, msg="Only English prompts are supported at this time")
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert "Only English prompts" in (caught.value.user_reason or "")


async def test_retry_after_is_passed_on(fake: FakeKie) -> None:
    client = make_client(fake, retry=NO_RETRY)
    fake.fail_next(429, on="create", retry_after=7)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert caught.value.retry_after == 7


async def test_transient_codes_in_200_bodies_are_retried(
    client: KieProvider, fake: FakeKie
) -> None:
    job = (await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))).provider_job_id
    assert job is not None
    fake.fail_next(500, on="poll", in_body=True)
    assert (await client.poll(job)).state is TaskState.SUCCEEDED  # polls are idempotent

    fake.fail_next(429, on="create", in_body=True)  # not processed: sent again
    await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))
    assert len(fake.tasks) == 2

    fake.fail_next(500, on="create", in_body=True)  # may have been processed: not resent
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert len(fake.tasks) == 2


async def test_a_malformed_answer_is_transient(client: KieProvider, fake: FakeKie) -> None:
    fake.inject(Fault.MALFORMED)
    with pytest.raises(ProviderError) as caught:
        await client.credits()
    assert caught.value.kind is ErrorKind.TRANSIENT


# --- failed tasks -------------------------------------------------------------------------


@pytest.mark.parametrize("model", [VEO3_FAST, RUNWAY_GEN3, WAN_T2V])
async def test_failed_tasks_are_classified(client: KieProvider, fake: FakeKie, model: str) -> None:
    fake.fail_next_task(501)
    job = (await client.submit(GenerationRequest(model=model, prompt="p"))).provider_job_id
    assert job is not None
    status = await client.poll(job)
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.kind is ErrorKind.INVALID_INPUT
    assert status.error.user_reason == GENERATION_FAILED_USER_REASON

    job = (await client.submit(GenerationRequest(model=model, prompt="nsfw p"))).provider_job_id
    assert job is not None
    status = await client.poll(job)
    assert status.error is not None
    assert status.error.kind is ErrorKind.SAFETY

    fake.fail_next_task(500)
    job = (await client.submit(GenerationRequest(model=model, prompt="p"))).provider_job_id
    assert job is not None
    status = await client.poll(job)
    assert status.error is not None
    assert status.error.kind is ErrorKind.TRANSIENT


# --- uploads, expiry, size cap --------------------------------------------------------------


async def test_upload_small_uses_base64_and_large_uses_the_stream(fake: FakeKie) -> None:
    client = make_client(fake, base64_limit=2000)
    small = sample_image(8, 8, "PNG", 1)
    large = _noisy_png(120)
    assert len(small) <= 2000 < len(large)
    try:
        small_url = await client.upload_image(small)
        assert fake.requests[-1].path == "/api/file-base64-upload"
        sent = json.loads(fake.requests[-1].body)
        assert sent["base64Data"].startswith("data:image/png;base64,")
        assert sent["uploadPath"]
        large_url = await client.upload_image(large)
        assert fake.requests[-1].path == "/api/file-stream-upload"
        assert fake.requests[-1].headers["Content-Type"].startswith("multipart/form-data")
        with pytest.raises(ProviderError) as caught:
            await client.upload_image(b"not an image at all")
        assert caught.value.kind is ErrorKind.INVALID_INPUT
    finally:
        await client.aclose()
    async with httpx.AsyncClient() as http:
        assert (await http.get(small_url)).content == small
        assert (await http.get(large_url)).content == large


def _noisy_png(side: int) -> bytes:
    import io
    import random

    from PIL import Image

    rng = random.Random(7)
    image = Image.frombytes(
        "RGB", (side, side), bytes(rng.randrange(256) for _ in range(side**2 * 3))
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_an_expired_upload_is_an_image_fetch_failure(
    client: KieProvider, fake: FakeKie, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await client.upload_image(sample_image(8, 8, "PNG", 3))
    fake.expire_uploads()
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 404

    async def stale_upload(data: bytes, *, file_name: str | None = None) -> str:
        return url  # as if the create came long after the upload

    monkeypatch.setattr(client, "upload_image", stale_upload)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=WAN_I2V, prompt="p", references=(photo(),)))
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.status_code == 451
    assert caught.value.user_reason == IMAGE_FETCH_USER_REASON


async def test_expired_results(client: KieProvider, fake: FakeKie) -> None:
    job = (await client.submit(GenerationRequest(model=RUNWAY_GEN3, prompt="p"))).provider_job_id
    assert job is not None
    done = await client.poll(job)
    fake.expire_results()
    with pytest.raises(ProviderError) as caught:
        await client.fetch(done.outputs[0])
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.user_reason == EXPIRED_USER_REASON
    status = await client.poll(job)  # Runway's record says expireFlag 1
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.user_reason == EXPIRED_USER_REASON


async def test_downloads_are_capped_and_must_be_video(fake: FakeKie) -> None:
    client = make_client(fake, max_download_bytes=64)
    try:
        job = (await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))).provider_job_id
        assert job is not None
        done = await client.poll(job)
        with pytest.raises(ProviderError, match="limit"):
            await client.fetch(done.outputs[0])
        with pytest.raises(ProviderError, match="not a video"):
            await client.fetch(ResultRef(data=sample_image(8, 8)))
    finally:
        await client.aclose()


# --- signatures and callback bodies ------------------------------------------------------------


def test_signature_matches_the_documented_algorithm() -> None:
    digest = hmac.new(HMAC_KEY, b"task-1.1700000000", hashlib.sha256).digest()
    assert kie_signature(HMAC_KEY, "task-1", "1700000000") == base64.b64encode(digest).decode()


def test_verify_signature() -> None:
    now = 1_700_000_000.0
    ts = str(int(now))
    good = kie_signature(HMAC_KEY, "task-1", ts)
    assert verify_kie_signature(HMAC_KEY, "task-1", ts, good, now)
    assert verify_kie_signature(HMAC_KEY, "task-1", ts, good, now + 299)
    # forged: another task's signature, a flipped byte, junk
    assert not verify_kie_signature(HMAC_KEY, "task-2", ts, good, now)
    flipped = base64.b64encode(bytes([base64.b64decode(good)[0] ^ 1]) + base64.b64decode(good)[1:])
    assert not verify_kie_signature(HMAC_KEY, "task-1", ts, flipped.decode(), now)
    assert not verify_kie_signature(HMAC_KEY, "task-1", ts, "not base64!!", now)
    # stale, or from the future
    assert not verify_kie_signature(HMAC_KEY, "task-1", ts, good, now + 301)
    assert not verify_kie_signature(HMAC_KEY, "task-1", ts, good, now - 301)
    # wrong key
    assert not verify_kie_signature(b"another-key", "task-1", ts, good, now)
    # missing parts
    assert not verify_kie_signature(HMAC_KEY, "task-1", "", good, now)
    assert not verify_kie_signature(HMAC_KEY, "task-1", ts, "", now)
    assert not verify_kie_signature(HMAC_KEY, "", ts, good, now)
    assert not verify_kie_signature(b"", "task-1", ts, good, now)
    # a timestamp that is not unix seconds
    assert not verify_kie_signature(HMAC_KEY, "task-1", "1.7e9", good, now)


def test_task_id_extraction_per_family() -> None:
    veo = {"code": 200, "msg": "ok", "data": {"taskId": "veo_1", "info": {"resultUrls": []}}}
    runway = {"code": 200, "msg": "ok", "data": {"task_id": "rw_1", "video_url": "u"}}
    aleph = {"code": 200, "msg": "ok", "data": {"result_video_url": "u"}, "taskId": "al_1"}
    market = {"code": 200, "msg": "ok", "data": {"taskId": "mk_1", "state": "success"}}
    assert callback_task_id(veo) == "veo_1"
    assert callback_task_id(runway) == "rw_1"
    assert callback_task_id(aleph) == "al_1"
    assert callback_task_id(market) == "mk_1"
    junk: list[object] = [None, [], "x", {"data": None}, {"data": {"taskId": ""}}, {"taskId": 5}]
    for body in junk:
        assert callback_task_id(body) is None


class Receiver:
    """A small aiohttp server standing in for the bot's /callbacks/kie."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/callbacks/kie", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/callbacks/kie"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize(
    ("model", "family"),
    [(VEO3_FAST, Family.VEO), (RUNWAY_GEN3, Family.RUNWAY), (WAN_T2V, Family.MARKET)],
)
async def test_signed_callback_reaches_the_receiver(
    fake: FakeKie, model: str, family: Family
) -> None:
    fake.slow_next(0.2)
    async with Receiver() as receiver:
        client = make_client(fake, callback_url=receiver.url)
        try:
            status = await client.submit(GenerationRequest(model=model, prompt="p"))
            job = status.provider_job_id
            assert job is not None
            assert fake.tasks[job].body["callBackUrl"] == receiver.url
            await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
            headers, raw = receiver.received[0]
            body = json.loads(raw)
            task_id = callback_task_id(body)
            assert task_id == job
            assert verify_kie_signature(
                HMAC_KEY,
                task_id,
                headers["X-Webhook-Timestamp"],
                headers["X-Webhook-Signature"],
                time.time(),
            )
            assert not verify_kie_signature(
                b"wrong", task_id, headers["X-Webhook-Timestamp"],
                headers["X-Webhook-Signature"], time.time(),
            )  # fmt: skip
            if family is Family.RUNWAY:
                assert set(body["data"]) == {"task_id", "video_id", "video_url", "image_url"}
            elif family is Family.VEO:
                assert body["data"]["info"]["resultUrls"] == [fake.result_url(job)]
            assert body["code"] == 200
            # The callback only wakes the job: the record endpoint is the authority.
            assert (await client.poll(job)).state is TaskState.SUCCEEDED
        finally:
            await client.aclose()


async def test_unsigned_without_an_hmac_key(fake: FakeKie) -> None:
    fake.hmac_key = None
    async with Receiver() as receiver:
        client = make_client(fake, callback_url=receiver.url)
        try:
            await client.submit(GenerationRequest(model=VEO3_FAST, prompt="p"))
            await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
        finally:
            await client.aclose()
    headers, _ = receiver.received[0]
    assert "X-Webhook-Signature" not in headers


async def test_a_lost_callback_leaves_polling(fake: FakeKie) -> None:
    fake.lose_callbacks()
    async with Receiver() as receiver:
        client = make_client(fake, callback_url=receiver.url)
        try:
            job = await client.submit(GenerationRequest(model=WAN_T2V, prompt="p"))
            assert job.provider_job_id is not None
            await asyncio.sleep(0.1)
            assert fake.callbacks_lost == [job.provider_job_id]
            assert receiver.received == []
            assert (await client.poll(job.provider_job_id)).state is TaskState.SUCCEEDED
        finally:
            await client.aclose()


async def test_an_early_callback_comes_before_the_result(fake: FakeKie) -> None:
    fake.slow_next(30)
    fake.early_callbacks()
    async with Receiver() as receiver:
        client = make_client(fake, callback_url=receiver.url)
        try:
            status = await client.submit(GenerationRequest(model=RUNWAY_GEN3, prompt="p"))
            assert status.provider_job_id is not None
            await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
            body = json.loads(receiver.received[0][1])
            assert body["code"] == 200
            assert body["data"]["video_url"]
            polled = await client.poll(status.provider_job_id)
            assert not polled.state.terminal  # the record says it is not done
            assert fake.callback_attempts[0].early
        finally:
            await client.aclose()


async def test_fake_refuses_a_wrong_key(fake: FakeKie) -> None:
    other = KieProvider("wrong", base_url=fake.base_url, retry=NO_RETRY)
    try:
        with pytest.raises(ProviderError) as caught:
            await other.credits()
    finally:
        await other.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 401


async def test_fake_validates_documented_inputs(client: KieProvider, fake: FakeKie) -> None:
    cases = [
        ("/api/v1/veo/generate", {"prompt": "p", "model": "veo9"}),
        ("/api/v1/runway/generate", {"prompt": "p", "duration": 5, "quality": "720p"}),
        ("/api/v1/runway/generate", {"prompt": "p", "duration": 10, "quality": "1080p",
                                     "aspectRatio": "16:9"}),
        ("/api/v1/jobs/createTask", {"model": KLING_I2V, "input": {"prompt": "p"}}),
        ("/api/v1/jobs/createTask", {"model": WAN_T2V, "input": {"prompt": "p",
                                                                 "resolution": "4k"}}),
    ]  # fmt: skip
    for path, body in cases:
        with pytest.raises(ProviderError) as caught:
            await client._call("POST", path, json=body, idempotent=False, what="create")
        assert caught.value.status_code == 422, (path, body)
    assert fake.tasks == {}
