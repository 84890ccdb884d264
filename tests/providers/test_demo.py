"""The offline demo provider: deterministic pictures, async progress and every failure path."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from lumigram.domain.generation import (
    ErrorKind,
    GenerationRequest,
    ProviderError,
    ReferenceImage,
    ResultRef,
    TaskState,
    TaskStatus,
)
from lumigram.imaging import probe_image
from lumigram.providers.demo import DEMO_CAPABILITIES, DEMO_MODEL, DemoProvider, image_size
from lumigram.services.ports import ImageProvider

LONG_SIDE = 64  # small pictures keep the suite fast


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs: object) -> DemoProvider:
    kwargs.setdefault("long_side", LONG_SIDE)
    return DemoProvider(**kwargs)  # type: ignore[arg-type]


def request(prompt: str = "a lighthouse at dusk", **kwargs: object) -> GenerationRequest:
    return GenerationRequest(model=DEMO_MODEL, prompt=prompt, **kwargs)  # type: ignore[arg-type]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


async def finish(provider: DemoProvider, req: GenerationRequest) -> TaskStatus:
    status = await provider.submit(req)
    for _ in range(100):
        if status.state.terminal:
            return status
        assert status.provider_job_id is not None
        status = await provider.poll(status.provider_job_id)
    raise AssertionError("the demo job never finished")


async def images(provider: DemoProvider, req: GenerationRequest) -> list[bytes]:
    status = await finish(provider, req)
    assert status.state is TaskState.SUCCEEDED, status.error
    return [await provider.fetch(ref) for ref in status.outputs]


def test_implements_the_provider_interface() -> None:
    provider = make()
    assert isinstance(provider, ImageProvider)
    assert provider.name == "demo"
    assert provider.models() == {DEMO_MODEL: DEMO_CAPABILITIES}
    assert provider.capabilities(DEMO_MODEL) == DEMO_CAPABILITIES
    with pytest.raises(KeyError):
        provider.capabilities("flux")


async def test_submit_runs_and_polls_report_increasing_progress() -> None:
    provider = make(steps=4)
    status = await provider.submit(request())
    assert status.state is TaskState.RUNNING
    assert status.provider_job_id
    assert status.provider_job_id.startswith("demo-")
    job = status.provider_job_id
    progress = [status.progress]
    while not status.state.terminal:
        status = await provider.poll(job)
        progress.append(status.progress)
    assert status.state is TaskState.SUCCEEDED
    assert progress == [0.0, 0.25, 0.5, 0.75, 1.0]
    # A finished job keeps answering the same.
    assert await provider.poll(job) == status


async def test_no_steps_and_no_latency_finishes_in_submit() -> None:
    status = await make(steps=0).submit(request())
    assert status.state is TaskState.SUCCEEDED
    assert len(status.outputs) == 1


async def test_time_based_progress_follows_latency() -> None:
    clock = FakeClock()
    provider = make(latency=10.0, steps=1, clock=clock)
    job = (await provider.submit(request())).provider_job_id
    assert job is not None
    status = await provider.poll(job)
    assert (status.state, status.progress) == (TaskState.RUNNING, 0.0)
    clock.now += 5
    assert (await provider.poll(job)).progress == pytest.approx(0.5)
    clock.now += 5
    assert (await provider.poll(job)).state is TaskState.SUCCEEDED


async def test_same_request_gives_identical_bytes() -> None:
    req = request(seed=7, num_outputs=2, output_format="webp")
    assert await images(make(), req) == await images(make(), req)


async def test_seed_prompt_and_negative_prompt_change_the_picture() -> None:
    provider = make()
    base = await images(provider, request(seed=1))
    assert await images(provider, request(seed=2)) != base
    assert await images(provider, request("a different prompt", seed=1)) != base
    assert await images(provider, request(seed=1, negative_prompt="blur")) != base


async def test_directives_do_not_change_the_picture() -> None:
    provider = make()
    plain = await images(provider, request("a red fox", seed=3))
    slowed = await images(provider, request("a red fox [demo:slow=0]", seed=3))
    assert slowed == plain


async def test_outputs_differ_by_seed_plus_index() -> None:
    provider = make()
    outputs = await images(provider, request(seed=10, num_outputs=3))
    assert len(set(outputs)) == 3
    assert outputs[1] == (await images(provider, request(seed=11)))[0]
    assert outputs[2] == (await images(provider, request(seed=12)))[0]


@pytest.mark.parametrize("aspect_ratio", DEMO_CAPABILITIES.aspect_ratios)
async def test_aspect_ratio_is_honoured(aspect_ratio: str) -> None:
    (data,) = await images(make(long_side=96), request(aspect_ratio=aspect_ratio))
    info = probe_image(data)
    assert (info.width, info.height) == image_size(aspect_ratio, 96)
    assert max(info.width, info.height) == 96
    w, h = (int(part) for part in aspect_ratio.split(":"))
    assert info.width / info.height == pytest.approx(w / h, rel=0.03)


@pytest.mark.parametrize(
    ("fmt", "expected"), [("png", "png"), ("jpeg", "jpeg"), ("jpg", "jpeg"), ("webp", "webp")]
)
async def test_output_format_is_honoured(fmt: str, expected: str) -> None:
    status = await finish(make(), request(output_format=fmt))
    (ref,) = status.outputs
    assert ref.data is not None
    info = probe_image(ref.data)
    assert info.format == expected
    assert ref.mime_type == info.mime_type


async def test_default_format_and_ratio_are_square_png() -> None:
    (data,) = await images(make(), request())
    info = probe_image(data)
    assert (info.format, info.width, info.height) == ("png", LONG_SIDE, LONG_SIDE)


async def test_reference_images_visibly_change_the_result() -> None:
    provider = make()
    plain = (await images(provider, request(seed=5)))[0]
    red = (ReferenceImage(png((255, 0, 0)), "image/png"),)
    with_red = (await images(provider, request(seed=5, references=red)))[0]
    assert with_red != plain
    assert with_red == (await images(provider, request(seed=5, references=red)))[0]
    # The reference's colour shows: the picture turns redder on average.
    plain_rgb = Image.open(io.BytesIO(plain)).convert("RGB").resize((1, 1)).getpixel((0, 0))
    red_rgb = Image.open(io.BytesIO(with_red)).convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert isinstance(plain_rgb, tuple)
    assert isinstance(red_rgb, tuple)
    assert red_rgb[0] - red_rgb[2] > plain_rgb[0] - plain_rgb[2] + 20


async def test_several_references_are_accepted() -> None:
    refs = tuple(ReferenceImage(png((i * 60, 100, 200)), "image/png") for i in range(4))
    assert len(await images(make(), request(references=refs))) == 1


@pytest.mark.parametrize(
    "req",
    [
        GenerationRequest(model="flux", prompt="x"),
        request("   "),
        request(aspect_ratio="21:9"),
        request(output_format="gif"),
        request(num_outputs=0),
        request(num_outputs=5),
        request(references=tuple(ReferenceImage(png((1, 2, 3)), "image/png") for _ in range(5))),
        request(references=(ReferenceImage(b"not an image", "image/png"),)),
        request("a cat [demo:explode]"),
        request("a cat [demo:fail=boom]"),
        request("a cat [demo:slow=soon]"),
        request("a cat [demo:slow=-1]"),
        request("a cat [demo:reject@later]"),
    ],
    ids=[
        "model",
        "empty-prompt",
        "aspect",
        "format",
        "zero-outputs",
        "too-many-outputs",
        "too-many-references",
        "bad-reference",
        "unknown-directive",
        "unknown-fail-kind",
        "bad-slow",
        "negative-slow",
        "bad-stage",
    ],
)
async def test_invalid_requests_are_rejected_at_submit(req: GenerationRequest) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().submit(req)
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    assert caught.value.user_reason


async def test_slow_directive_delays_completion() -> None:
    clock = FakeClock()
    provider = make(steps=1, clock=clock)
    job = (await provider.submit(request("waves [demo:slow=3]"))).provider_job_id
    assert job is not None
    status = await provider.poll(job)
    assert status.state is TaskState.RUNNING
    clock.now += 1.5
    status = await provider.poll(job)
    assert status.state is TaskState.RUNNING
    assert status.progress == pytest.approx(0.5)
    clock.now += 1.5
    assert (await provider.poll(job)).state is TaskState.SUCCEEDED


async def test_slow_directive_in_real_time() -> None:
    provider = make(steps=0)
    status = await provider.submit(request("waves [demo:slow=0.05]"))
    assert status.state is TaskState.RUNNING
    await asyncio.sleep(0.06)
    assert status.provider_job_id is not None
    assert (await provider.poll(status.provider_job_id)).state is TaskState.SUCCEEDED


@pytest.mark.parametrize(
    ("directive", "kind"),
    [
        ("[demo:fail=transient]", ErrorKind.TRANSIENT),
        ("[demo:fail=unavailable]", ErrorKind.UNAVAILABLE),
        ("[demo:fail=invalid]", ErrorKind.INVALID_INPUT),
        ("[DEMO:Fail = Transient]", ErrorKind.TRANSIENT),
        ("[demo:reject]", ErrorKind.SAFETY),
    ],
)
async def test_failure_directives_fail_the_job(directive: str, kind: ErrorKind) -> None:
    provider = make(steps=2)
    status = await provider.submit(request(f"a cat {directive}"))
    assert status.state is TaskState.RUNNING  # it fails later, like a real async provider
    status = await finish(provider, request(f"a cat {directive}"))
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.kind is kind
    assert not status.outputs
    if kind is ErrorKind.TRANSIENT:
        assert status.error.retry_after == 1.0
    if kind is ErrorKind.SAFETY:
        assert status.error.user_reason


@pytest.mark.parametrize(
    ("directive", "kind"),
    [
        ("[demo:fail=transient@submit]", ErrorKind.TRANSIENT),
        ("[demo:fail=unavailable@submit]", ErrorKind.UNAVAILABLE),
        ("[demo:fail=invalid@submit]", ErrorKind.INVALID_INPUT),
        ("[demo:reject@submit]", ErrorKind.SAFETY),
    ],
)
async def test_submit_stage_directives_raise_from_submit(directive: str, kind: ErrorKind) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().submit(request(f"a cat {directive}"))
    assert caught.value.kind is kind
    if kind is ErrorKind.SAFETY:
        assert caught.value.user_reason


async def test_constructor_flags_fail_every_job() -> None:
    status = await finish(make(fail=ErrorKind.UNAVAILABLE), request())
    assert status.error is not None
    assert status.error.kind is ErrorKind.UNAVAILABLE
    with pytest.raises(ProviderError) as caught:
        await make(fail=ErrorKind.SAFETY, fail_on_submit=True).submit(request())
    assert caught.value.kind is ErrorKind.SAFETY


async def test_a_prompt_directive_wins_over_the_constructor() -> None:
    provider = make(fail=ErrorKind.UNAVAILABLE, fail_on_submit=True)
    status = await finish(provider, request("a cat [demo:fail=transient]"))
    assert status.error is not None
    assert status.error.kind is ErrorKind.TRANSIENT


async def test_unknown_job_fails_transiently_so_it_is_resubmitted() -> None:
    status = await make().poll("demo-from-before-a-restart")
    assert status.state is TaskState.FAILED
    assert status.provider_job_id == "demo-from-before-a-restart"
    assert status.error is not None
    assert status.error.kind is ErrorKind.TRANSIENT


async def test_old_jobs_are_forgotten_beyond_max_jobs() -> None:
    provider = make(max_jobs=1)
    first = (await provider.submit(request("one"))).provider_job_id
    second = (await provider.submit(request("two"))).provider_job_id
    assert first is not None
    assert second is not None
    assert (await provider.poll(first)).state is TaskState.FAILED
    assert (await provider.poll(second)).state is TaskState.RUNNING


async def test_cancel() -> None:
    provider = make()
    job = (await provider.submit(request())).provider_job_id
    assert job is not None
    await provider.cancel(job)
    assert (await provider.poll(job)).state is TaskState.CANCELLED
    await provider.cancel("demo-unknown")  # never raises

    done = await finish(provider, request())
    assert done.provider_job_id is not None
    await provider.cancel(done.provider_job_id)
    assert (await provider.poll(done.provider_job_id)).state is TaskState.SUCCEEDED


async def test_concurrent_polls_render_once_and_agree() -> None:
    provider = make(steps=1)
    job = (await provider.submit(request())).provider_job_id
    assert job is not None
    first, second = await asyncio.gather(provider.poll(job), provider.poll(job))
    assert first.state is TaskState.SUCCEEDED
    assert first == second


async def test_fetch_returns_inline_bytes_only() -> None:
    provider = make()
    assert await provider.fetch(ResultRef(data=b"abc", mime_type="image/png")) == b"abc"
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(ResultRef(url="https://example.invalid/x.png"))
    assert caught.value.kind is ErrorKind.INVALID_INPUT
    await provider.aclose()


def test_constructor_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        DemoProvider(latency=-1)
    with pytest.raises(ValueError, match="long_side"):
        DemoProvider(long_side=8)
