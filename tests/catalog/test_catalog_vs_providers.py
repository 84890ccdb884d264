"""The catalog offers users nothing its provider client cannot do.

Every catalog model's capabilities must lie within what its provider client
declares for the provider model (``provider.capabilities(provider_model)``),
and the request the worker builds from any offered setting must pass the
client's own request checks and carry that setting. Nothing here touches the
network: the clients are built but only their offline parts are used.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from lumigram.catalog import ModelSpec, load_catalog
from lumigram.domain.generation import GenerationRequest, ProviderError, ReferenceImage
from lumigram.domain.jobs import Job
from lumigram.fakes.base import sample_image
from lumigram.providers import gemini, huggingface, kie, openai_images, replicate
from lumigram.providers.demo import DemoProvider
from lumigram.providers.gemini import GeminiProvider
from lumigram.providers.huggingface import HuggingFaceProvider
from lumigram.providers.kie import KieProvider
from lumigram.providers.openai_images import OpenAIProvider
from lumigram.providers.replicate import ReplicateProvider
from lumigram.services.ports import ImageProvider
from lumigram.services.worker import JobRunner

CATALOG = load_catalog()
MODELS = list(CATALOG)
UNREACHABLE = "http://127.0.0.1:9"  # never contacted


def _format(name: str) -> str:
    """The catalog says "jpeg" where a provider may say "jpg": the same format."""
    name = name.lower()
    return "jpeg" if name == "jpg" else name


@pytest.fixture
async def clients() -> AsyncIterator[dict[str, ImageProvider]]:
    built: dict[str, ImageProvider] = {
        "demo": DemoProvider(long_side=64, steps=0),
        "replicate": ReplicateProvider("r8_test", base_url=UNREACHABLE),
        "openai": OpenAIProvider("sk-test-key-000000", base_url=UNREACHABLE),
        "gemini": GeminiProvider("test-key", base_url=UNREACHABLE),
        "huggingface": HuggingFaceProvider("hf_test", base_url=UNREACHABLE),
        "kie": KieProvider("kie-test", base_url=UNREACHABLE, upload_base_url=UNREACHABLE),
    }
    yield built
    for client in built.values():
        await client.aclose()


def test_every_catalog_provider_has_a_client() -> None:
    assert {model.provider for model in MODELS} <= {
        "demo",
        "replicate",
        "openai",
        "gemini",
        "huggingface",
        "kie",
    }


@pytest.mark.parametrize("model", MODELS, ids=[model.id for model in MODELS])
def test_offered_capabilities_are_within_the_providers(
    model: ModelSpec, clients: dict[str, ImageProvider]
) -> None:
    client = clients[model.provider]
    try:
        declared = client.capabilities(model.provider_model)
    except KeyError:
        pytest.fail(f"{model.provider} has no model {model.provider_model!r}")
    offered = model.capabilities
    problems: list[str] = []

    def mismatch(field: str, catalog_says: object, provider_says: object) -> None:
        problems.append(
            f"{model.id} ({model.provider} {model.provider_model}): {field}: "
            f"catalog offers {catalog_says!r}, provider declares {provider_says!r}"
        )

    if offered.kind not in declared.outputs:
        mismatch("kind", offered.kind.value, sorted(kind.value for kind in declared.outputs))
    extra_ratios = [r for r in offered.aspect_ratios if r not in declared.aspect_ratios]
    if extra_ratios:
        mismatch("aspect_ratios", extra_ratios, declared.aspect_ratios)
    provider_formats = {_format(f) for f in declared.output_formats}
    extra_formats = [f for f in offered.output_formats if _format(f) not in provider_formats]
    if extra_formats:
        mismatch("output_formats", extra_formats, declared.output_formats)
    if offered.max_outputs > declared.max_outputs:
        mismatch("max_outputs", offered.max_outputs, declared.max_outputs)
    if offered.max_reference_images > declared.max_reference_images:
        mismatch(
            "max_reference_images", offered.max_reference_images, declared.max_reference_images
        )
    for flag in ("seed", "negative_prompt", "prompt_upsampling"):
        if getattr(offered, flag) and not getattr(declared, flag):
            mismatch(flag, True, False)
    extra_levels = [level for level in offered.safety_levels if level not in declared.safety_levels]
    if extra_levels:
        mismatch("safety_levels", extra_levels, declared.safety_levels)

    assert not problems, "\n".join(problems)


# --- the requests the worker sends --------------------------------------------------------


def _variants(model: ModelSpec) -> list[tuple[str, dict[str, Any], object]]:
    """(label, user settings, value that must reach the provider) for every offered choice."""
    caps = model.capabilities
    variants: list[tuple[str, dict[str, Any], object]] = [("defaults", {}, None)]
    variants += [(f"aspect_ratio={r}", {"aspect_ratio": r}, None) for r in caps.aspect_ratios]
    variants += [(f"output_format={f}", {"output_format": f}, None) for f in caps.output_formats]
    variants += [(f"resolution={r}", {"resolution": r}, r) for r in caps.resolutions]
    variants += [(f"quality={q}", {"quality": q}, q) for q in caps.qualities]
    if len(caps.durations) > 1:  # a model with one length takes no duration setting
        variants += [(f"duration={d}", {"duration_seconds": d}, d) for d in caps.durations]
    if caps.max_outputs > 1:
        variants.append(("num_outputs=max", {"num_outputs": caps.max_outputs}, None))
    if caps.max_reference_images:
        variants.append(
            (
                "reference_images=max",
                {"reference_images": caps.max_reference_images},
                None,
            )
        )
    return variants


def _job(model: ModelSpec, settings: dict[str, Any]) -> Job:
    """The job GenerationService.queue would store for these settings."""
    values = model.validate_settings(settings).model_dump(exclude_none=True)
    if model.capabilities.seed:
        values["seed"] = 12345
    now = datetime(2026, 5, 1, tzinfo=UTC)
    return Job(
        user_id=1,
        reply_to=str(1),
        language="en",
        model_id=model.id,
        provider=model.provider,
        provider_model=model.provider_model,
        mode="custom",
        prompt="a lighthouse at dusk",
        final_prompt="a lighthouse at dusk",
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
        settings=values,
    )


async def _payload(provider: str, client: ImageProvider, request: GenerationRequest) -> str:
    """What the client would send, as text; raises ProviderError where it would refuse."""
    if provider == "replicate":
        return json.dumps(await replicate.build_input(request))
    if provider == "openai":
        return json.dumps(openai_images.build_params(request))
    if provider == "gemini":
        gemini.check_request(request)
        return gemini.build_body(request).decode("utf-8")
    if provider == "huggingface":
        return json.dumps(huggingface.build_payload(request))
    if provider == "kie":  # the photo is uploaded to KIE first: a URL stands in for it
        kie.check_request(kie.model_spec(request.model), request)
        urls = ["https://tempfile.example/photo.png"] * len(request.references)
        return json.dumps(kie.build_body(request, urls, callback_url=None))
    status = await client.submit(request)  # the demo provider is offline anyway
    return repr(status.state)


@pytest.mark.parametrize("model", MODELS, ids=[model.id for model in MODELS])
async def test_every_offered_setting_is_accepted_and_reaches_the_provider(
    model: ModelSpec, clients: dict[str, ImageProvider]
) -> None:
    client = clients[model.provider]
    reference = sample_image(fmt="PNG")
    problems: list[str] = []
    for label, settings, must_carry in _variants(model):
        job = _job(model, settings)
        # Image-to-video models always get the photo they need (the bot asks for it).
        count = max(
            int(job.settings.get("reference_images", 0)), model.capabilities.min_reference_images
        )
        references = tuple(ReferenceImage(reference, "image/png") for _ in range(count))
        # Exactly the request JobRunner sends for this job.
        request = JobRunner._request(job, client, references)
        try:
            payload = await _payload(model.provider, client, request)
        except ProviderError as error:
            problems.append(f"{model.id} with {label}: refused: {error}")
            continue
        if must_carry is not None and json.dumps(must_carry) not in payload:
            problems.append(
                f"{model.id} with {label}: accepted, but {must_carry!r} is not in what is "
                f"sent (request.extra={dict(request.extra)!r})"
            )
    assert not problems, "\n".join(problems)
