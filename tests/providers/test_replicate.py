"""ReplicateProvider against FakeReplicate over real HTTP, plus its parsing rules."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.fakes.base import Fault, sample_image
from lumigram.fakes.replicate import NSFW_ERROR, FakeReplicate
from lumigram.providers.http import RetryPolicy
from lumigram.providers.replicate import (
    MODELS,
    ReplicateProvider,
    classify_failure,
    parse_prediction,
    progress_from_logs,
    to_status,
)
from lumigram.services.ports import ImageProvider

KEY = "r8_TEST_SECRET_TOKEN_abcdef0123456789"
FLUX = "black-forest-labs/flux-1.1-pro"
SEEDREAM = "bytedance/seedream-4"
NANO = "google/nano-banana"
NANO_PRO = "google/nano-banana-pro"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    server = FakeReplicate(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


def make_client(fake: FakeReplicate, **kwargs: Any) -> ReplicateProvider:
    options: dict[str, Any] = {
        "timeout": 5.0,
        "retry": FAST,
        "wait_seconds": 1,
        "poll_interval": 0.1,
    }
    options.update(kwargs)
    return ReplicateProvider(KEY, base_url=fake.base_url, **options)


@pytest.fixture
async def client(fake: FakeReplicate) -> AsyncIterator[ReplicateProvider]:
    provider = make_client(fake)
    yield provider
    await provider.aclose()


def created_input(fake: FakeReplicate) -> dict[str, Any]:
    creates = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]
    model_input: dict[str, Any] = json.loads(creates[-1].body)["input"]
    return model_input


def assert_no_key(error: BaseException) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(error.args)
    if isinstance(error, ProviderError):
        assert KEY not in (error.user_reason or "")


def png_reference(seed: int = 0) -> ReferenceImage:
    return ReferenceImage(data=sample_image(16, 16, "PNG", seed), mime_type="image/png")


# --- interface ------------------------------------------------------------------


async def test_is_an_image_provider(client: ReplicateProvider) -> None:
    assert isinstance(client, ImageProvider)
    assert client.name == "replicate"
    assert set(client.models()) == {FLUX, SEEDREAM, NANO, NANO_PRO}
    assert set(client.models()) == set(MODELS)  # the fake accepts the same table
    assert client.capabilities(SEEDREAM).max_reference_images == 10
    with pytest.raises(KeyError):
        client.capabilities("nope/nope")


def test_constructor_checks_wait_seconds() -> None:
    with pytest.raises(ValueError, match="wait_seconds"):
        ReplicateProvider(KEY, wait_seconds=61)
    with pytest.raises(ValueError, match="token"):
        ReplicateProvider("")


# --- success and polling ------------------------------------------------------------


async def test_success_with_flux_defaults(client: ReplicateProvider, fake: FakeReplicate) -> None:
    status = await client.submit(GenerationRequest(model=FLUX, prompt="a lighthouse at dusk"))
    assert status.state is TaskState.SUCCEEDED
    assert status.provider_job_id in fake.predictions
    assert status.progress == 1.0
    assert len(status.outputs) == 1
    assert status.outputs[0].mime_type == "image/webp"

    data = await client.fetch(status.outputs[0])
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"

    create = fake.requests[0]
    assert create.path == f"/v1/models/{FLUX}/predictions"
    assert create.headers["Prefer"] == "wait=1"
    assert create.headers["Authorization"] == f"Bearer {KEY}"
    assert created_input(fake) == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "1:1",
        "output_format": "webp",
        "safety_tolerance": 2,
        "prompt_upsampling": True,
    }
    download = fake.requests[-1]
    assert download.path.startswith("/files/")
    assert download.headers["Authorization"] == f"Bearer {KEY}"


async def test_request_settings_are_sent(client: ReplicateProvider, fake: FakeReplicate) -> None:
    request = GenerationRequest(
        model=FLUX,
        prompt="p",
        aspect_ratio="16:9",
        output_format="png",
        seed=42,
        prompt_upsampling=False,
        safety_level=5,
        extra={"output_quality": 90},
    )
    status = await client.submit(request)
    assert status.state is TaskState.SUCCEEDED
    assert created_input(fake) == {
        "prompt": "p",
        "aspect_ratio": "16:9",
        "output_format": "png",
        "safety_tolerance": 5,
        "prompt_upsampling": False,
        "seed": 42,
        "output_quality": 90,
    }
    assert (await client.fetch(status.outputs[0])).startswith(b"\x89PNG")


async def test_polling_until_done_with_progress(fake: FakeReplicate) -> None:
    fake.run_seconds = 2.0  # longer than the 1 s Prefer: wait
    client = make_client(fake, poll_interval=0.2)
    try:
        status = await client.submit(GenerationRequest(model=FLUX, prompt="slow one"))
        assert status.state is TaskState.RUNNING
        job = status.provider_job_id
        assert job is not None
        assert job in fake.predictions

        seen: list[TaskStatus] = []
        for _ in range(40):
            status = await client.poll(job)
            seen.append(status)
            if status.state.terminal:
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    assert status.state is TaskState.SUCCEEDED
    assert status.outputs
    progress = [s.progress for s in seen if s.state is TaskState.RUNNING and s.progress is not None]
    assert progress, "no progress reported while processing"
    assert all(0.0 <= p < 1.0 for p in progress)
    assert progress == sorted(progress)
    gets = [r for r in fake.requests if r.method == "GET" and r.path == f"/v1/predictions/{job}"]
    assert gets


async def test_wait_helper_polls_to_the_end(fake: FakeReplicate) -> None:
    fake.run_seconds = 1.4
    client = make_client(fake, poll_interval=0.1)
    try:
        status = await client.submit(GenerationRequest(model=NANO, prompt="banana"))
        assert status.state is TaskState.RUNNING
        assert status.provider_job_id is not None
        final = await client.wait(status.provider_job_id, timeout=5)
    finally:
        await client.aclose()
    assert final.state is TaskState.SUCCEEDED
    assert final.outputs[0].mime_type == "image/jpeg"


async def test_starting_is_reported_as_queued_when_polled(fake: FakeReplicate) -> None:
    fake.run_seconds = 30  # stays "starting" for 6 s
    client = make_client(fake)
    try:
        status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
        assert status.state is TaskState.RUNNING  # submit: accepted and not finished
        assert status.provider_job_id is not None
        polled = await client.poll(status.provider_job_id)
        assert polled.state is TaskState.QUEUED
        await client.cancel(status.provider_job_id)
    finally:
        await client.aclose()


async def test_seedream_several_outputs_and_references(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    references = (png_reference(1), png_reference(2))
    request = GenerationRequest(
        model=SEEDREAM,
        prompt="a comic strip",
        num_outputs=3,
        references=references,
        prompt_upsampling=True,
        extra={"size": "1K"},
    )
    status = await client.submit(request)
    assert status.state is TaskState.SUCCEEDED
    assert len(status.outputs) == 3
    for output in status.outputs:
        assert (await client.fetch(output))[:3] == b"\xff\xd8\xff"

    sent = created_input(fake)
    assert sent["sequential_image_generation"] == "auto"
    assert sent["max_images"] == 3
    assert sent["enhance_prompt"] is True
    assert sent["size"] == "1K"
    assert sent["aspect_ratio"] == "match_input_image"  # references and no ratio asked
    assert "output_format" not in sent
    assert len(sent["image_input"]) == 2
    for uri, reference in zip(sent["image_input"], references, strict=True):
        prefix = "data:image/png;base64,"
        assert uri.startswith(prefix)
        assert base64.b64decode(uri.removeprefix(prefix)) == reference.data


async def test_reference_type_comes_from_the_bytes(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    jpeg = ReferenceImage(data=sample_image(16, 16, "JPEG"), mime_type="image/png")  # mislabelled
    await client.submit(GenerationRequest(model=NANO_PRO, prompt="edit", references=(jpeg,)))
    assert created_input(fake)["image_input"][0].startswith("data:image/jpeg;base64,")


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest(model="nobody/nothing", prompt="p"),
        GenerationRequest(model=FLUX, prompt="   "),
        GenerationRequest(model=FLUX, prompt="p", aspect_ratio="7:3"),
        GenerationRequest(model=FLUX, prompt="p", output_format="gif"),
        GenerationRequest(model=FLUX, prompt="p", num_outputs=2),
        GenerationRequest(model=FLUX, prompt="p", references=(png_reference(),)),
        GenerationRequest(model=FLUX, prompt="p", negative_prompt="blur"),
        GenerationRequest(model=FLUX, prompt="p", safety_level=9),
        GenerationRequest(model=FLUX, prompt="p", extra={"output_quality": True}),
        GenerationRequest(model=FLUX, prompt="p", extra={"width": 512}),
        GenerationRequest(model=NANO, prompt="p", aspect_ratio="match_input_image"),
        GenerationRequest(model=NANO, prompt="p", seed=3),
        GenerationRequest(model=SEEDREAM, prompt="p", references=(png_reference(),) * 11),
        GenerationRequest(
            model=SEEDREAM, prompt="p", num_outputs=10, references=(png_reference(),) * 6
        ),
        GenerationRequest(
            model=NANO_PRO,
            prompt="p",
            references=(ReferenceImage(data=b"GIF-ish no", mime_type="image/png"),),
        ),
    ],
)
async def test_invalid_requests_fail_before_any_http(
    client: ReplicateProvider, fake: FakeReplicate, request_: GenerationRequest
) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.submit(request_)
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert fake.requests == []


async def test_fake_answers_422_in_replicate_problem_shape(fake: FakeReplicate) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"input": {"prompt": "p", "aspect_ratio": "7:3", "image_input": ["x"] * 2}}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
        response = await http.post(f"/v1/models/{FLUX}/predictions", json=body)
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    assert "aspect_ratio" in problem["detail"]
    fields = {item["field"] for item in problem["invalid_fields"]}
    assert fields == {"input.aspect_ratio", "input.image_input"}


async def test_server_side_422_is_invalid_input(
    client: ReplicateProvider, fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skip the client's own checks to reach the fake's validation.
    async def unchecked(request: GenerationRequest) -> dict[str, Any]:
        return {"prompt": request.prompt, "aspect_ratio": request.aspect_ratio}

    monkeypatch.setattr("lumigram.providers.replicate.build_input", unchecked)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p", aspect_ratio="7:3"))
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.status_code == 422
    assert "input.aspect_ratio" in str(caught.value)
    assert len(fake.requests) == 1  # not retried


async def test_422_classification_names_the_fields(client: ReplicateProvider) -> None:
    problem = {
        "title": "Input validation failed",
        "detail": "- input.aspect_ratio: aspect_ratio must be one of the following",
        "status": 422,
        "invalid_fields": [{"type": "enum", "field": "input.aspect_ratio", "description": "x"}],
    }
    response = httpx.Response(422, json=problem)
    error = client._classify(response)
    assert error.kind is ErrorKind.INVALID_INPUT
    assert "input.aspect_ratio" in str(error)
    assert error.status_code == 422


async def test_throttled_without_retry_after_uses_the_detail(client: ReplicateProvider) -> None:
    response = httpx.Response(
        429, json={"detail": "Request was throttled. Expected available in 2 seconds."}
    )
    error = client._classify(response)
    assert error.kind is ErrorKind.TRANSIENT
    assert error.retry_after == 2.0


async def test_key_echoed_in_a_body_is_redacted(client: ReplicateProvider) -> None:
    error = client._classify(httpx.Response(400, json={"detail": f"bad token {KEY}"}))
    assert_no_key(error)


# --- failures ---------------------------------------------------------------------


async def test_safety_rejection(client: ReplicateProvider, fake: FakeReplicate) -> None:
    status = await client.submit(GenerationRequest(model=FLUX, prompt="something NSFW"))
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.kind is ErrorKind.SAFETY
    assert status.error.user_reason
    assert "NSFW" not in status.error.user_reason  # a fixed, user-safe reason
    assert status.provider_job_id in fake.predictions


async def test_safety_rejection_seen_when_polling(fake: FakeReplicate) -> None:
    fake.run_seconds = 1.3
    client = make_client(fake)
    try:
        status = await client.submit(GenerationRequest(model=NANO, prompt="nsfw please"))
        assert status.state is TaskState.RUNNING
        assert status.provider_job_id is not None
        final = await client.wait(status.provider_job_id, timeout=5)
    finally:
        await client.aclose()
    assert final.state is TaskState.FAILED
    assert final.error is not None
    assert final.error.kind is ErrorKind.SAFETY


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (NSFW_ERROR, ErrorKind.SAFETY),
        ("The input or output was flagged as sensitive. Please try again (E005)", ErrorKind.SAFETY),
        ("Image generation blocked by safety filter", ErrorKind.SAFETY),
        ("Input validation error: could not fetch image_input", ErrorKind.INVALID_INPUT),
        ("CUDA out of memory", ErrorKind.TRANSIENT),
        (None, ErrorKind.TRANSIENT),
    ],
)
def test_failure_classification(text: str | None, kind: ErrorKind) -> None:
    error = classify_failure("abc", text)
    assert error.kind is kind
    assert (error.user_reason is not None) == (kind is ErrorKind.SAFETY)


async def test_payment_required_is_unavailable(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    fake.inject(Fault.PAYMENT_REQUIRED)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 402
    assert len(fake.requests) == 1
    assert_no_key(caught.value)


async def test_bad_token_is_unavailable(fake: FakeReplicate) -> None:
    client = ReplicateProvider("r8_wrong", base_url=fake.base_url, retry=FAST)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert caught.value.status_code == 401


async def test_rate_limit_waits_retry_after_then_succeeds(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    fake.retry_after_seconds = 1
    fake.inject(Fault.RATE_LIMIT)
    started = time.monotonic()
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    elapsed = time.monotonic() - started
    assert status.state is TaskState.SUCCEEDED
    assert 0.9 <= elapsed < 2.5
    assert len(fake.predictions) == 1


async def test_create_is_not_resent_after_a_server_error(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    """A 500 on create may still have started a (billed) prediction: never send it twice."""
    fake.inject(Fault.SERVER_ERROR)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert len([r for r in fake.requests if r.method == "POST"]) == 1


async def test_create_is_not_resent_after_a_timeout(fake: FakeReplicate) -> None:
    fake.inject(Fault.HANG)
    client = make_client(fake, timeout=0.3)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert len([r for r in fake.requests if r.method == "POST"]) == 1


async def test_poll_server_error_then_success(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    fake.run_seconds = 0.2
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert status.provider_job_id is not None
    fake.inject(Fault.SERVER_ERROR)
    polled = await client.poll(status.provider_job_id)
    assert polled.provider_job_id == status.provider_job_id
    assert len([r for r in fake.requests if r.method == "GET"]) >= 2


async def test_hang_is_transient_within_the_timeout(fake: FakeReplicate) -> None:
    fake.inject(Fault.HANG)
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
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    fake.inject(Fault.MALFORMED)
    with pytest.raises(ProviderError) as caught:
        await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "unexpected answer" in str(caught.value)


async def test_non_json_answer_is_classified(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert status.provider_job_id is not None
    # The base fault's HTML page, through poll this time.
    fake.malformed_response = super(FakeReplicate, fake).malformed_response  # type: ignore[method-assign]
    fake.inject(Fault.MALFORMED)
    with pytest.raises(ProviderError) as caught:
        await client.poll(status.provider_job_id)
    assert caught.value.kind is ErrorKind.TRANSIENT


# --- cancel and unknown ids -----------------------------------------------------------


async def test_cancel_a_running_prediction(fake: FakeReplicate) -> None:
    fake.run_seconds = 10
    client = make_client(fake)
    try:
        status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
        job = status.provider_job_id
        assert status.state is TaskState.RUNNING
        assert job is not None
        await client.cancel(job)
        assert (await client.poll(job)).state is TaskState.CANCELLED
        await client.cancel(job)  # already finished: no error
        cancels = [r for r in fake.requests if r.path == f"/v1/predictions/{job}/cancel"]
        assert len(cancels) == 2
    finally:
        await client.aclose()


async def test_cancel_finished_and_unknown_are_quiet(
    client: ReplicateProvider, fake: FakeReplicate
) -> None:
    status = await client.submit(GenerationRequest(model=FLUX, prompt="p"))
    assert status.provider_job_id is not None
    await client.cancel(status.provider_job_id)
    assert (await client.poll(status.provider_job_id)).state is TaskState.SUCCEEDED
    await client.cancel("doesnotexist")


async def test_poll_unknown_id_is_invalid_input(client: ReplicateProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.poll("doesnotexist")
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.status_code == 404
    with pytest.raises(ProviderError):
        await client.poll("")


async def test_fetch_inline_and_bad_refs(client: ReplicateProvider) -> None:
    png = sample_image()
    assert await client.fetch(ResultRef(data=png)) == png
    with pytest.raises(ProviderError):
        await client.fetch(ResultRef(data=b"nope"))
    with pytest.raises(ProviderError):
        await client.fetch(ResultRef())


async def test_key_never_in_any_error(fake: FakeReplicate) -> None:
    fake.retry_after_seconds = 0
    client = make_client(fake, timeout=0.3)
    errors: list[BaseException] = []
    attempts: list[tuple[list[Fault], GenerationRequest]] = [
        ([Fault.PAYMENT_REQUIRED], GenerationRequest(model=FLUX, prompt="p")),
        ([Fault.UNAUTHORIZED], GenerationRequest(model=FLUX, prompt="p")),
        ([Fault.SERVER_ERROR], GenerationRequest(model=FLUX, prompt="p")),
        ([Fault.RATE_LIMIT] * 2, GenerationRequest(model=FLUX, prompt="p")),
        ([Fault.MALFORMED], GenerationRequest(model=FLUX, prompt="p")),
        ([Fault.HANG], GenerationRequest(model=FLUX, prompt="p")),
        ([], GenerationRequest(model=FLUX, prompt="p", aspect_ratio="0:0")),
    ]
    try:
        for faults, request in attempts:
            fake.inject(*faults)
            with pytest.raises(ProviderError) as caught:
                await client.submit(request)
            errors.append(caught.value)
        with pytest.raises(ProviderError) as caught:
            await client.poll("missing")
        errors.append(caught.value)
        status = await client.submit(GenerationRequest(model=FLUX, prompt="nsfw"))
        assert status.error is not None
        errors.append(status.error)
    finally:
        await client.aclose()
    for error in errors:
        assert_no_key(error)


# --- parsing ------------------------------------------------------------------------


def test_progress_from_logs() -> None:
    logs = "Using seed: 1\n  0%|          | 0/20\n 45%|████▌     | 9/20 [00:02<00:02]\n"
    assert progress_from_logs(logs) == 0.45
    assert progress_from_logs("") is None
    assert progress_from_logs("no bars here") is None
    assert progress_from_logs("100%|██████████| 20/20") == 1.0


def test_parse_prediction_shapes() -> None:
    base = {"id": "p1", "status": "succeeded", "error": None, "logs": ""}
    single = to_status(parse_prediction({**base, "output": "https://x/out.png"}))
    assert [o.url for o in single.outputs] == ["https://x/out.png"]
    assert single.outputs[0].mime_type == "image/png"
    several = to_status(parse_prediction({**base, "output": ["https://x/a.jpg", "https://x/b"]}))
    assert [o.mime_type for o in several.outputs] == ["image/jpeg", None]
    removed = to_status(parse_prediction({**base, "output": None, "data_removed": True}))
    assert removed.state is TaskState.FAILED
    assert removed.error is not None
    assert removed.error.kind is ErrorKind.TRANSIENT
    aborted = to_status(parse_prediction({**base, "status": "aborted", "output": None}))
    assert aborted.state is TaskState.CANCELLED


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {},
        {"id": "", "status": "succeeded"},
        {"id": "p", "status": "done"},
        {"id": "p", "status": "succeeded", "output": 3},
        {"id": "p", "status": "succeeded", "output": [1, 2]},
        {"id": "p", "status": "succeeded", "output": "file:///etc/passwd"},
        {"id": "p", "status": "failed", "error": {"message": "x"}},
        {"id": "p", "status": "processing", "logs": 5},
    ],
)
def test_parse_prediction_rejects_bad_shapes(body: object) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_prediction(body)
    assert caught.value.kind is ErrorKind.TRANSIENT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
prediction_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8) | json_values,
        "status": st.sampled_from(
            ["starting", "processing", "succeeded", "failed", "canceled", "aborted", "x"]
        )
        | json_values,
        "output": json_values | st.just("https://h/a.webp") | st.just(["https://h/a.png"]),
        "error": json_values,
        "logs": st.text(max_size=40) | json_values,
    },
)


@given(json_values | prediction_like)
def test_parse_never_raises_anything_but_provider_error(body: object) -> None:
    try:
        status = to_status(parse_prediction(body))
    except ProviderError:
        return
    assert isinstance(status, TaskStatus)
