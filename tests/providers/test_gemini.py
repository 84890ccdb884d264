"""GeminiProvider against FakeGemini over real HTTP."""

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
from lumigram.fakes.gemini import FakeGemini
from lumigram.providers.gemini import GeminiProvider, classify_error, parse_generate_response
from lumigram.providers.http import RetryPolicy
from lumigram.services.ports import ImageProvider

KEY = "AIzaSyTEST-SECRET-0123456789abcdefghijk"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=5)
FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    client = GeminiProvider(KEY, base_url=fake.base_url, timeout=5.0, retry=FAST)
    yield client
    await client.aclose()


def flash(prompt: str = "a lighthouse at dusk", **fields: object) -> GenerationRequest:
    return GenerationRequest(model=FLASH, prompt=prompt, **fields)  # type: ignore[arg-type]


async def rejection(provider: GeminiProvider, request: GenerationRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.submit(request)
    assert KEY not in str(caught.value)
    assert KEY not in (caught.value.user_reason or "")
    return caught.value


# --- declared models ---------------------------------------------------------------


def test_models_and_capabilities(provider: GeminiProvider) -> None:
    assert isinstance(provider, ImageProvider)
    assert provider.name == "gemini"
    assert set(provider.models()) == {FLASH, PRO}
    assert provider.capabilities(FLASH).max_reference_images == 3
    assert provider.capabilities(PRO).max_reference_images == 14
    assert "21:9" in provider.capabilities(PRO).aspect_ratios
    assert provider.capabilities(FLASH).max_outputs == 1
    with pytest.raises(KeyError):
        provider.capabilities("imagen-4")


# --- success -------------------------------------------------------------------------


async def test_generation_returns_inline_png(provider: GeminiProvider, fake: FakeGemini) -> None:
    status = await provider.submit(flash(aspect_ratio="16:9"))
    assert status.state is TaskState.SUCCEEDED
    (ref,) = status.outputs
    assert ref.mime_type == "image/png"
    assert ref.data is not None
    assert await provider.fetch(ref) == ref.data
    with Image.open(io.BytesIO(ref.data)) as image:
        assert image.width > image.height

    (call,) = fake.requests
    assert call.path == f"/v1beta/models/{FLASH}:generateContent"
    assert call.headers["x-goog-api-key"] == KEY
    assert fake.keys_in_query == 0
    body = json.loads(call.body)
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse at dusk"}]}],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "16:9"},
        },
    }


async def test_references_are_sent_inline(provider: GeminiProvider, fake: FakeGemini) -> None:
    references = tuple(
        ReferenceImage(sample_image(fmt="JPEG", seed=seed), "image/jpeg") for seed in range(5)
    )
    status = await provider.submit(
        GenerationRequest(
            model=PRO,
            prompt="merge them",
            references=references,
            aspect_ratio="9:16",
            extra={"image_size": "2K", "image_only": True},
        )
    )
    (ref,) = status.outputs
    assert ref.data is not None
    with Image.open(io.BytesIO(ref.data)) as image:
        assert image.height > image.width

    body = json.loads(fake.requests[0].body)
    parts = body["contents"][0]["parts"]
    assert parts[0] == {"text": "merge them"}
    assert [base64.b64decode(p["inlineData"]["data"]) for p in parts[1:]] == [
        r.data for r in references
    ]
    assert {p["inlineData"]["mimeType"] for p in parts[1:]} == {"image/jpeg"}
    assert body["generationConfig"] == {
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "9:16", "imageSize": "2K"},
    }


async def test_synchronous_provider_has_nothing_to_poll(provider: GeminiProvider) -> None:
    with pytest.raises(ProviderError):
        await provider.poll("anything")
    await provider.cancel("anything")
    with pytest.raises(ProviderError):  # a URL would be fetched with the key attached
        await provider.fetch(ResultRef(url="https://example.com/a.png"))


# --- requests refused before sending --------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        flash(references=tuple(ReferenceImage(sample_image(), "image/png") for _ in range(4))),
        flash(aspect_ratio="7:4"),
        flash(num_outputs=2),
        flash(extra={"image_size": "4K"}),  # Pro only
        flash(references=(ReferenceImage(b"GIF89a", "image/gif"),)),
        flash(output_format="jpeg"),
        flash("  "),
        GenerationRequest(model="imagen-4", prompt="a fox"),
    ],
    ids=[
        "4-references",
        "ratio",
        "two-outputs",
        "size-on-flash",
        "gif",
        "jpeg",
        "empty",
        "unknown-model",
    ],
)
async def test_invalid_requests_are_refused_locally(
    provider: GeminiProvider, fake: FakeGemini, request_: GenerationRequest
) -> None:
    error = await rejection(provider, request_)
    assert error.kind is ErrorKind.INVALID_INPUT
    assert fake.requests == []


async def test_fake_validates_and_accepts_query_key(fake: FakeGemini) -> None:
    path = f"/v1beta/models/{FLASH}:generateContent"
    prompt = {"contents": [{"parts": [{"text": "x"}]}]}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        by_query = await client.post(path, params={"key": KEY}, json=prompt)
        bad_ratio = await client.post(
            path,
            headers={"x-goog-api-key": KEY},
            json={**prompt, "generationConfig": {"imageConfig": {"aspectRatio": "7:4"}}},
        )
        unknown = await client.post(
            "/v1beta/models/gemini-0:generateContent", headers={"x-goog-api-key": KEY}, json=prompt
        )
    assert by_query.status_code == 200
    assert fake.keys_in_query == 1
    assert bad_ratio.status_code == 400
    assert bad_ratio.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert unknown.status_code == 404
    assert set(unknown.json()["error"]) == {"code", "message", "status"}


# --- safety and no-image answers ----------------------------------------------------------


async def test_blocked_prompt_is_safety(provider: GeminiProvider, fake: FakeGemini) -> None:
    error = await rejection(provider, flash("something nsfw"))
    assert error.kind is ErrorKind.SAFETY
    assert error.user_reason == "The prompt was blocked by Google's safety filters."
    assert len(fake.requests) == 1


async def test_image_safety_finish_is_safety(provider: GeminiProvider) -> None:
    error = await rejection(provider, flash("lots of gore"))
    assert error.kind is ErrorKind.SAFETY
    assert "IMAGE_SAFETY" in str(error)
    assert error.user_reason == "The generated image was blocked by Google's safety filters."


async def test_text_only_answer_carries_the_model_text(provider: GeminiProvider) -> None:
    error = await rejection(provider, flash("words only please"))
    assert error.kind is ErrorKind.INVALID_INPUT
    assert error.user_reason == "I can describe that scene, but I will not draw it."


# --- provider errors --------------------------------------------------------------------


async def test_depleted_credit_is_unavailable(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.inject(Fault.PAYMENT_REQUIRED)
    error = await rejection(provider, flash())
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.status_code == 429
    assert len(fake.requests) == 1


async def test_bad_key_is_unavailable(fake: FakeGemini) -> None:
    wrong = "AIzaSyWRONG-SECRET-9876543210zyxwvutsrqp"
    client = GeminiProvider(wrong, base_url=fake.base_url, timeout=5.0, retry=FAST)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(flash())
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 400  # Google's answer: INVALID_ARGUMENT, API_KEY_INVALID
    assert wrong not in str(caught.value)
    assert len(fake.requests) == 1


async def test_rate_limit_waits_for_retry_after(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.retry_after_seconds = 1
    fake.inject(Fault.RATE_LIMIT)
    started = time.monotonic()
    status = await provider.submit(flash())
    elapsed = time.monotonic() - started
    assert status.state is TaskState.SUCCEEDED
    assert 0.9 <= elapsed < 3.0
    assert len(fake.requests) == 2


async def test_server_error_then_success(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.inject(Fault.SERVER_ERROR)
    status = await provider.submit(flash())
    assert status.state is TaskState.SUCCEEDED
    assert len(fake.requests) == 2


async def test_persistent_unavailability_is_transient(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.retry_after_seconds = 0
    fake.inject(*[Fault.UNAVAILABLE] * FAST.attempts)
    error = await rejection(provider, flash())
    assert error.kind is ErrorKind.TRANSIENT
    assert error.status_code == 503
    assert len(fake.requests) == FAST.attempts


async def test_hang_times_out_as_transient(fake: FakeGemini) -> None:
    client = GeminiProvider(KEY, base_url=fake.base_url, timeout=0.5, retry=RetryPolicy(attempts=1))
    fake.inject(Fault.HANG)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(flash())
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert time.monotonic() - started < 2.0


async def test_malformed_answer_is_classified(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.inject(Fault.MALFORMED)
    error = await rejection(provider, flash())
    assert error.kind is ErrorKind.TRANSIENT
    assert "unexpected answer" in str(error)
    assert len(fake.requests) == 1


# --- classification and parsing, without a server ------------------------------------------


def _error(status: int, google_status: str, message: str = "m", **extra: object) -> httpx.Response:
    body = {"error": {"code": status, "message": message, "status": google_status, **extra}}
    return httpx.Response(status, json=body)


def test_classification_table() -> None:
    cases = [
        (_error(400, "INVALID_ARGUMENT"), ErrorKind.INVALID_INPUT),
        (_error(403, "PERMISSION_DENIED"), ErrorKind.UNAVAILABLE),
        (_error(401, "UNAUTHENTICATED"), ErrorKind.UNAVAILABLE),
        (
            _error(400, "FAILED_PRECONDITION", "User location is not supported"),
            ErrorKind.UNAVAILABLE,
        ),
        (_error(404, "NOT_FOUND"), ErrorKind.UNAVAILABLE),
        (_error(429, "RESOURCE_EXHAUSTED"), ErrorKind.TRANSIENT),
        (_error(500, "INTERNAL"), ErrorKind.TRANSIENT),
        (_error(504, "DEADLINE_EXCEEDED"), ErrorKind.TRANSIENT),
        (httpx.Response(502, text="<html>bad gateway</html>"), ErrorKind.TRANSIENT),
        (httpx.Response(302, headers={"Location": "https://elsewhere"}), ErrorKind.UNAVAILABLE),
    ]
    for response, kind in cases:
        assert classify_error(response, KEY).kind is kind, response.text


def test_retry_info_delay_is_honoured() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    error = classify_error(_error(429, "RESOURCE_EXHAUSTED", details=details), KEY)
    assert error.kind is ErrorKind.TRANSIENT
    assert error.retry_after == 37.0


def test_keys_are_redacted_from_error_text() -> None:
    other = "AIzaSyOTHER0123456789abcdefghijklmnopq"
    error = classify_error(_error(400, "INVALID_ARGUMENT", f"bad {KEY} and {other}"), KEY)
    assert KEY not in str(error)
    assert other not in str(error)


def test_thought_parts_and_non_image_inline_data_are_skipped() -> None:
    final, draft = sample_image(seed=1), sample_image(seed=2)
    payload = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "thought": True,
                            "inlineData": {"mimeType": "image/png", "data": _b64(draft)},
                        },
                        {"inlineData": {"mimeType": "text/plain", "data": _b64(b"hello")}},
                        {"inlineData": {"mimeType": "image/png", "data": _b64(final)}},
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    (ref,) = parse_generate_response(json.dumps(payload).encode())
    assert ref.data == final


def test_inline_bytes_must_be_an_image() -> None:
    payload = {
        "candidates": [
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": _b64(b"no")}}]}}
        ]
    }
    with pytest.raises(ProviderError) as caught:
        parse_generate_response(json.dumps(payload).encode())
    assert caught.value.kind is ErrorKind.INVALID_INPUT


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
parts = st.lists(
    st.dictionaries(st.sampled_from(["text", "inlineData", "thought"]), json_values), max_size=3
)
candidates = st.lists(
    st.fixed_dictionaries(
        {"content": st.fixed_dictionaries({"parts": parts}) | json_values},
        optional={"finishReason": json_values},
    ),
    max_size=2,
)


@settings(max_examples=100, deadline=None)
@given(
    document=json_values
    | st.fixed_dictionaries({"candidates": candidates}, optional={"promptFeedback": json_values})
)
def test_parser_raises_only_provider_errors(document: object) -> None:
    with contextlib.suppress(ProviderError):
        parse_generate_response(json.dumps(document).encode())
