"""HuggingFaceProvider against FakeHuggingFace over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
)
from lumigram.fakes.base import Fault, sample_image
from lumigram.fakes.huggingface import FakeHuggingFace
from lumigram.providers.http import RetryPolicy
from lumigram.providers.huggingface import MODELS, HuggingFaceProvider
from lumigram.services.ports import ImageProvider

KEY = "hf_TEST_SECRET_TOKEN_abcdef0123456789"
FLUX = "black-forest-labs/FLUX.1-schnell"
ROUTE = f"/hf-inference/models/{FLUX}"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


@pytest.fixture
async def fake() -> AsyncIterator[FakeHuggingFace]:
    server = FakeHuggingFace(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


def make_client(fake: FakeHuggingFace, **kwargs: Any) -> HuggingFaceProvider:
    options: dict[str, Any] = {"timeout": 5.0, "retry": FAST}
    options.update(kwargs)
    return HuggingFaceProvider(KEY, base_url=fake.base_url, **options)


@pytest.fixture
async def client(fake: FakeHuggingFace) -> AsyncIterator[HuggingFaceProvider]:
    provider = make_client(fake)
    yield provider
    await provider.aclose()


def sent_body(fake: FakeHuggingFace) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fake.requests[-1].body)
    return body


def assert_no_key(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    if isinstance(error, ProviderError):
        assert KEY not in (error.user_reason or "")


async def test_is_an_image_provider(client: HuggingFaceProvider) -> None:
    assert isinstance(client, ImageProvider)
    assert client.name == "huggingface"
    assert set(client.models()) == set(MODELS) == {FLUX}
    caps = client.capabilities(FLUX)
    assert caps.max_outputs == 1
    assert caps.max_reference_images == 0
    assert caps.seed


async def test_success_returns_bytes_inline(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    status = await client.submit(GenerationRequest(model=FLUX, prompt="a red fox", seed=7))
    assert status.state is TaskState.SUCCEEDED
    assert status.provider_job_id is None
    assert status.progress == 1.0
    (output,) = status.outputs
    assert output.url is None
    assert output.mime_type == "image/jpeg"
    assert output.data is not None
    assert output.data.startswith(b"\xff\xd8\xff")
    assert await client.fetch(output) == output.data

    request = fake.requests[-1]
    assert request.method == "POST"
    assert request.path == ROUTE
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert sent_body(fake) == {
        "inputs": "a red fox",
        "parameters": {"width": 1024, "height": 1024, "num_inference_steps": 4, "seed": 7},
    }


async def test_aspect_ratio_and_steps(client: HuggingFaceProvider, fake: FakeHuggingFace) -> None:
    request = GenerationRequest(
        model=FLUX, prompt="wide", aspect_ratio="16:9", extra={"num_inference_steps": 2}
    )
    status = await client.submit(request)
    assert status.state is TaskState.SUCCEEDED
    assert sent_body(fake)["parameters"] == {"width": 1344, "height": 768, "num_inference_steps": 2}


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest(model="someone/else", prompt="p"),
        GenerationRequest(model=FLUX, prompt=""),
        GenerationRequest(model=FLUX, prompt="p", aspect_ratio="5:4"),
        GenerationRequest(model=FLUX, prompt="p", output_format="png"),
        GenerationRequest(model=FLUX, prompt="p", num_outputs=2),
        GenerationRequest(model=FLUX, prompt="p", negative_prompt="x"),
        GenerationRequest(model=FLUX, prompt="p", safety_level=2),
        GenerationRequest(model=FLUX, prompt="p", extra={"num_inference_steps": 0}),
        GenerationRequest(model=FLUX, prompt="p", extra={"guidance_scale": 3.5}),
        GenerationRequest(
            model=FLUX,
            prompt="p",
            references=(ReferenceImage(data=sample_image(), mime_type="image/png"),),
        ),
    ],
)
async def test_invalid_requests_fail_before_any_http(
    client: HuggingFaceProvider, fake: FakeHuggingFace, request_: GenerationRequest
) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.submit(request_)
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert fake.requests == []


async def test_model_loading_waits_estimated_time(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    fake.start_loading(1.0)
    started = time.monotonic()
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    elapsed = time.monotonic() - started
    assert status.state is TaskState.SUCCEEDED
    assert 0.9 <= elapsed < 2.5
    assert len(fake.requests) == 2


async def test_model_still_loading_is_transient_with_retry_after(fake: FakeHuggingFace) -> None:
    fake.start_loading(30)
    client = make_client(fake, retry=RetryPolicy(attempts=2, max_retry_after=0.1))
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert caught.value.status_code == 503
    assert caught.value.retry_after is not None
    assert 25 < caught.value.retry_after <= 30
    assert "loading" in str(caught.value)


async def test_safety_rejection(client: HuggingFaceProvider, fake: FakeHuggingFace) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="an NSFW scene"))
    assert caught.value.kind is ErrorKind.SAFETY
    assert caught.value.user_reason
    assert len(fake.requests) == 1  # not retried
    assert_no_key(caught.value)


async def test_payment_required_is_unavailable(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    fake.inject(Fault.PAYMENT_REQUIRED)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 402
    assert_no_key(caught.value)


async def test_bad_token_is_unavailable(fake: FakeHuggingFace) -> None:
    client = HuggingFaceProvider("hf_wrong", base_url=fake.base_url, retry=FAST)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 401


async def test_rate_limit_waits_retry_after_then_succeeds(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    fake.retry_after_seconds = 1
    fake.inject(Fault.RATE_LIMIT)
    started = time.monotonic()
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    elapsed = time.monotonic() - started
    assert status.state is TaskState.SUCCEEDED
    assert 0.9 <= elapsed < 2.5


async def test_server_error_then_success(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    fake.inject(Fault.SERVER_ERROR)
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert status.state is TaskState.SUCCEEDED
    assert len(fake.requests) == 2


async def test_hang_is_transient_within_the_timeout(fake: FakeHuggingFace) -> None:
    fake.inject(Fault.HANG, Fault.HANG)
    client = make_client(fake, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert time.monotonic() - started < FAST.attempts * 0.3 + 0.5
    assert_no_key(caught.value)


async def test_malformed_answer_is_classified(
    client: HuggingFaceProvider, fake: FakeHuggingFace
) -> None:
    fake.inject(Fault.MALFORMED)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "not an image" in str(caught.value)


async def test_poll_and_cancel_have_no_jobs(client: HuggingFaceProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.poll("anything")
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    await client.cancel("anything")  # no-op


async def test_fetch_checks_inline_bytes(client: HuggingFaceProvider) -> None:
    with pytest.raises(ProviderError):
        await client.fetch(ResultRef(data=b"text"))
    with pytest.raises(ProviderError):
        await client.fetch(ResultRef())


async def test_fake_validation_and_error_shape(fake: FakeHuggingFace) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
        bad = await http.post(ROUTE, json={"inputs": "p", "parameters": {"width": 100}})
        unknown = await http.post("/hf-inference/models/x/y", json={"inputs": "p"})
        fake.start_loading(5)
        loading = await http.post(ROUTE, json={"inputs": "p"})
    assert bad.status_code == 422
    assert "width" in bad.json()["error"]
    assert unknown.status_code == 404
    assert loading.status_code == 503
    assert loading.json()["estimated_time"] > 0


async def test_classification_of_error_bodies(client: HuggingFaceProvider) -> None:
    listed = client._classify(httpx.Response(400, json={"error": ["bad width", "bad height"]}))
    assert listed.kind is ErrorKind.INVALID_INPUT
    assert "bad width" in str(listed)
    echoed = client._classify(httpx.Response(400, json={"error": f"token {KEY} is odd"}))
    assert_no_key(echoed)
    no_json = client._classify(httpx.Response(502, text="<html>bad gateway</html>"))
    assert no_json.kind is ErrorKind.TRANSIENT


async def test_key_never_in_any_error(fake: FakeHuggingFace) -> None:
    fake.retry_after_seconds = 0
    client = make_client(fake, timeout=0.3)
    errors: list[BaseException] = []
    try:
        for faults, prompt in [
            ([Fault.PAYMENT_REQUIRED], "p"),
            ([Fault.UNAUTHORIZED], "p"),
            ([Fault.SERVER_ERROR] * 2, "p"),
            ([Fault.UNAVAILABLE] * 2, "p"),
            ([Fault.MALFORMED], "p"),
            ([Fault.HANG] * 2, "p"),
            ([], "nsfw"),
        ]:
            fake.inject(*faults)
            with pytest.raises(ProviderError) as caught:
                await client.submit(GenerationRequest(model=FLUX, prompt=prompt))
            errors.append(caught.value)
    finally:
        await client.aclose()
    for error in errors:
        assert_no_key(error)
