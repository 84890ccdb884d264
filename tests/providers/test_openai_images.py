"""OpenAIProvider against FakeOpenAI over real HTTP."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
)
from lumigram.fakes.base import Fault, sample_image
from lumigram.fakes.openai_images import FakeOpenAI, parse_multipart
from lumigram.providers.http import RetryPolicy
from lumigram.providers.openai_images import (
    MODELS,
    OpenAIProvider,
    classify_error,
    parse_images_response,
)
from lumigram.services.ports import ImageProvider

KEY = "sk-test-SECRET-0123456789abcdef"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=5)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    client = OpenAIProvider(KEY, base_url=fake.url("/v1"), timeout=5.0, retry=FAST)
    yield client
    await client.aclose()


def gpt(prompt: str = "a lighthouse at dusk", **fields: object) -> GenerationRequest:
    return GenerationRequest(model="gpt-image-1", prompt=prompt, **fields)  # type: ignore[arg-type]


def api_calls(fake: FakeOpenAI) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/v1/")]


async def rejection(provider: OpenAIProvider, request: GenerationRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.submit(request)
    assert KEY not in str(caught.value)
    assert KEY not in (caught.value.user_reason or "")
    return caught.value


# --- declared models ---------------------------------------------------------------


def test_models_and_capabilities(provider: OpenAIProvider) -> None:
    assert isinstance(provider, ImageProvider)
    assert provider.name == "openai"
    assert set(provider.models()) == {"gpt-image-1", "dall-e-3"}
    gpt_caps = provider.capabilities("gpt-image-1")
    assert gpt_caps.max_reference_images == 16
    assert gpt_caps.max_outputs == 4
    assert gpt_caps.aspect_ratios == ("1:1", "3:2", "2:3")
    assert gpt_caps.output_formats == ("png", "jpeg", "webp")
    assert provider.capabilities("dall-e-3").max_outputs == 1
    with pytest.raises(KeyError):
        provider.capabilities("dall-e-2")


# --- success -------------------------------------------------------------------------


async def test_generation_returns_inline_images(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    status = await provider.submit(
        gpt(aspect_ratio="3:2", output_format="webp", num_outputs=2, safety_level=2)
    )
    assert status.state is TaskState.SUCCEEDED
    assert len(status.outputs) == 2
    for ref in status.outputs:
        assert ref.mime_type == "image/webp"
        assert ref.data is not None
        assert await provider.fetch(ref) == ref.data
        with Image.open(io.BytesIO(ref.data)) as image:
            assert image.width > image.height  # 1536x1024 scaled down by the fake

    (call,) = fake.requests
    assert call.path == "/v1/images/generations"
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    body = json.loads(call.body)
    assert body == {
        "model": "gpt-image-1",
        "prompt": "a lighthouse at dusk",
        "n": 2,
        "size": "1536x1024",
        "output_format": "webp",
        "moderation": "low",
    }


async def test_no_aspect_ratio_asks_for_auto_size(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await provider.submit(gpt(extra={"quality": "high", "background": "opaque"}))
    body = json.loads(fake.requests[0].body)
    assert body["size"] == "auto"
    assert body["quality"] == "high"
    assert body["background"] == "opaque"
    assert "moderation" not in body


async def test_edit_sends_references_as_multipart(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    references = (
        ReferenceImage(sample_image(seed=1), "image/png"),
        ReferenceImage(sample_image(fmt="JPEG", seed=2), "image/jpeg"),
    )
    status = await provider.submit(
        gpt("put them side by side", references=references, aspect_ratio="2:3", safety_level=1)
    )
    assert status.state is TaskState.SUCCEEDED
    assert len(status.outputs) == 1
    assert status.outputs[0].mime_type == "image/png"

    (call,) = fake.requests
    assert call.path == "/v1/images/edits"
    parts = parse_multipart(call.headers["Content-Type"], call.body)
    images = [part for part in parts if part.name == "image[]"]
    assert [part.data for part in images] == [ref.data for ref in references]
    assert [part.content_type for part in images] == ["image/png", "image/jpeg"]
    fields = {part.name: part.data.decode() for part in parts if part.filename is None}
    assert fields["model"] == "gpt-image-1"
    assert fields["prompt"] == "put them side by side"
    assert fields["size"] == "1024x1536"
    assert "moderation" not in fields  # not a parameter of the edits endpoint


async def test_dalle3_url_result_is_downloaded(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    status = await provider.submit(
        GenerationRequest(
            model="dall-e-3", prompt="a fox", aspect_ratio="16:9", extra={"style": "natural"}
        )
    )
    (ref,) = status.outputs
    assert ref.data is None
    assert ref.url is not None
    assert ref.url.startswith(fake.url("/files/"))
    body = json.loads(fake.requests[0].body)
    assert body == {
        "model": "dall-e-3",
        "prompt": "a fox",
        "n": 1,
        "size": "1792x1024",
        "response_format": "url",
        "style": "natural",
    }

    data = await provider.fetch(ref)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.width > image.height
    download = fake.requests[-1]
    assert download.path.startswith("/files/")
    assert "Authorization" not in download.headers  # the key stays with OpenAI


async def test_fetch_rejects_non_images(provider: OpenAIProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(ResultRef(data=b"<html>"))
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    with pytest.raises(ProviderError):
        await provider.fetch(ResultRef(url="file:///etc/passwd"))


async def test_synchronous_provider_has_nothing_to_poll(provider: OpenAIProvider) -> None:
    with pytest.raises(ProviderError):
        await provider.poll("anything")
    await provider.cancel("anything")  # never raises


# --- requests refused before sending --------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest(model="dall-e-3", prompt="two foxes", num_outputs=2),
        GenerationRequest(model="dall-e-2", prompt="a fox"),
        GenerationRequest(model="dall-e-3", prompt="a fox", aspect_ratio="3:2"),
        GenerationRequest(
            model="dall-e-3",
            prompt="a fox",
            references=(ReferenceImage(sample_image(), "image/png"),),
        ),
        GenerationRequest(model="gpt-image-1", prompt="a fox", num_outputs=5),
        GenerationRequest(model="gpt-image-1", prompt="a fox", output_format="gif"),
        GenerationRequest(model="gpt-image-1", prompt="a fox", safety_level=3),
        GenerationRequest(model="gpt-image-1", prompt="a fox", extra={"quality": "hd"}),
        GenerationRequest(model="gpt-image-1", prompt="x" * 32001),
        GenerationRequest(model="gpt-image-1", prompt="   "),
        GenerationRequest(
            model="gpt-image-1",
            prompt="a fox",
            references=tuple(ReferenceImage(sample_image(), "image/png") for _ in range(17)),
        ),
    ],
    ids=[
        "dalle3-n2",
        "unknown-model",
        "dalle3-ratio",
        "dalle3-references",
        "gpt-n5",
        "gpt-format",
        "gpt-safety",
        "gpt-quality",
        "long-prompt",
        "empty-prompt",
        "17-references",
    ],
)
async def test_invalid_requests_are_refused_locally(
    provider: OpenAIProvider, fake: FakeOpenAI, request_: GenerationRequest
) -> None:
    error = await rejection(provider, request_)
    assert error.kind is ErrorKind.INVALID_INPUT
    assert fake.requests == []


async def test_fake_validates_like_openai(fake: FakeOpenAI) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        dalle_n2 = await client.post(
            "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x", "n": 2}
        )
        gpt_response_format = await client.post(
            "/v1/images/generations",
            json={"model": "gpt-image-1", "prompt": "x", "response_format": "url"},
        )
        dalle_size = await client.post(
            "/v1/images/generations",
            json={"model": "dall-e-3", "prompt": "x", "size": "1536x1024"},
        )
        no_key = await client.post(
            "/v1/images/generations",
            json={"model": "gpt-image-1", "prompt": "x"},
            headers={"Authorization": "Bearer wrong"},
        )
    for response in (dalle_n2, gpt_response_format, dalle_size):
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert dalle_n2.json()["error"]["param"] == "n"
    assert gpt_response_format.json()["error"]["code"] == "unknown_parameter"
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"


# --- provider errors --------------------------------------------------------------------


async def test_moderation_block_is_safety(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    error = await rejection(provider, gpt("something NSFW"))
    assert error.kind is ErrorKind.SAFETY
    assert error.user_reason == "The request was rejected by OpenAI's safety system (sexual)."
    assert "req_" not in error.user_reason  # request ids are for the log only
    assert len(api_calls(fake)) == 1  # not retried


async def test_dalle3_content_policy_is_safety(provider: OpenAIProvider) -> None:
    error = await rejection(provider, GenerationRequest(model="dall-e-3", prompt="nsfw fox"))
    assert error.kind is ErrorKind.SAFETY
    assert error.user_reason == "The request was rejected by OpenAI's content policy."


async def test_insufficient_quota_is_unavailable_and_not_retried(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.inject(Fault.PAYMENT_REQUIRED)
    error = await rejection(provider, gpt())
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.status_code == 429
    assert "insufficient_quota" in str(error)
    assert len(api_calls(fake)) == 1


async def test_bad_key_is_unavailable(fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-SECRET-9876543210"
    client = OpenAIProvider(wrong, base_url=fake.url("/v1"), timeout=5.0, retry=FAST)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(gpt())
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 401
    assert wrong not in str(caught.value)
    assert len(api_calls(fake)) == 1


async def test_rate_limit_waits_for_retry_after(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.retry_after_seconds = 1
    fake.inject(Fault.RATE_LIMIT)
    started = time.monotonic()
    status = await provider.submit(gpt())
    elapsed = time.monotonic() - started
    assert status.state is TaskState.SUCCEEDED
    assert 0.9 <= elapsed < 3.0
    assert len(api_calls(fake)) == 2


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.UNAVAILABLE])
async def test_server_error_then_success(
    provider: OpenAIProvider, fake: FakeOpenAI, fault: Fault
) -> None:
    fake.retry_after_seconds = 0
    fake.inject(fault)
    status = await provider.submit(gpt())
    assert status.state is TaskState.SUCCEEDED
    assert len(api_calls(fake)) == 2


async def test_persistent_server_errors_are_transient(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.inject(Fault.SERVER_ERROR, Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    error = await rejection(provider, gpt())
    assert error.kind is ErrorKind.TRANSIENT
    assert error.status_code == 500
    assert len(api_calls(fake)) == FAST.attempts


async def test_hang_times_out_as_transient(fake: FakeOpenAI) -> None:
    client = OpenAIProvider(
        KEY, base_url=fake.url("/v1"), timeout=0.5, retry=RetryPolicy(attempts=1)
    )
    fake.inject(Fault.HANG)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(gpt())
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "timeout" in str(caught.value)
    assert time.monotonic() - started < 2.0


async def test_hang_then_success_is_retried(fake: FakeOpenAI) -> None:
    client = OpenAIProvider(KEY, base_url=fake.url("/v1"), timeout=0.5, retry=FAST)
    fake.inject(Fault.HANG)
    try:
        status = await client.submit(gpt())
    finally:
        await client.aclose()
    assert status.state is TaskState.SUCCEEDED


async def test_connection_refused_is_transient() -> None:
    client = OpenAIProvider(
        KEY, base_url="http://127.0.0.1:9/v1", timeout=1.0, retry=RetryPolicy(attempts=1)
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(gpt())
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert KEY not in str(caught.value)


async def test_malformed_answer_is_classified(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.inject(Fault.MALFORMED)
    error = await rejection(provider, gpt())
    assert error.kind is ErrorKind.TRANSIENT
    assert "unexpected answer" in str(error)
    assert len(api_calls(fake)) == 1  # a 200 may have been billed: not repeated here


async def test_key_never_in_urls(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.inject(Fault.SERVER_ERROR)
    await provider.submit(gpt())
    await provider.submit(GenerationRequest(model="dall-e-3", prompt="a fox"))
    assert all(KEY not in request.path for request in fake.requests)


# --- classification and parsing, without a server ------------------------------------------


def _response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_classification_table() -> None:
    def error(code: str | None, message: str = "m", type_: str = "x") -> dict[str, object]:
        return {"error": {"message": message, "type": type_, "param": None, "code": code}}

    cases = [
        (400, error("billing_hard_limit_reached"), ErrorKind.UNAVAILABLE),
        (400, error("content_policy_violation"), ErrorKind.SAFETY),
        (400, error(None), ErrorKind.INVALID_INPUT),
        (403, error(None), ErrorKind.UNAVAILABLE),
        (404, error("model_not_found"), ErrorKind.UNAVAILABLE),
        (429, error("rate_limit_exceeded"), ErrorKind.TRANSIENT),
        (502, "<html>bad gateway</html>", ErrorKind.TRANSIENT),
    ]
    for status, body, kind in cases:
        assert classify_error(_response(status, body), KEY).kind is kind, (status, body)


def test_retry_after_ms_is_preferred() -> None:
    response = _response(429, {}, {"retry-after-ms": "250", "Retry-After": "7"})
    assert classify_error(response, KEY).retry_after == pytest.approx(0.25)


def test_keys_are_redacted_from_error_text() -> None:
    message = f"Incorrect API key provided: {KEY}. Also sk-proj-abc***************wxyz."
    body = {"error": {"message": message, "type": "x", "param": None, "code": "invalid_api_key"}}
    text = str(classify_error(_response(401, body), KEY))
    assert KEY not in text
    assert "sk-proj-abc" not in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(
    document=json_values
    | st.fixed_dictionaries(
        {"data": st.lists(st.dictionaries(st.sampled_from(["b64_json", "url"]), json_values))}
    )
)
def test_parser_raises_only_provider_errors(document: object) -> None:
    with contextlib.suppress(ProviderError):
        parse_images_response(json.dumps(document).encode())


def test_parser_accepts_documented_shapes() -> None:
    png = sample_image()
    payload = {
        "created": 1,
        "data": [
            {"b64_json": base64.b64encode(png).decode()},
            {"url": "https://example.com/a.png", "revised_prompt": "r"},
        ],
    }
    inline, linked = parse_images_response(json.dumps(payload).encode())
    assert inline.data == png
    assert inline.mime_type == "image/png"
    assert linked.url == "https://example.com/a.png"
    assert MODELS["gpt-image-1"].safety_levels == (1, 2)
