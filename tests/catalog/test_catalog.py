"""The model catalog: loading, overrides, availability, settings validation and pricing."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumigram.catalog import (
    Catalog,
    CatalogError,
    ModelSpec,
    Settings,
    SettingsError,
    load_catalog,
)
from lumigram.providers.demo import DEMO_CAPABILITIES, DEMO_MODEL

SHIPPED = load_catalog()

EXPECTED_PROVIDER_MODELS = {
    ("replicate", "black-forest-labs/flux-1.1-pro"),
    ("replicate", "bytedance/seedream-4"),
    ("replicate", "google/nano-banana"),
    ("replicate", "google/nano-banana-pro"),
    ("openai", "gpt-image-1"),
    ("openai", "dall-e-3"),
    ("gemini", "gemini-2.5-flash-image"),
    ("gemini", "gemini-3-pro-image-preview"),
    ("huggingface", "black-forest-labs/FLUX.1-schnell"),
    ("kie", "veo3_fast"),
    ("kie", "runway-gen3"),
    ("kie", "wan/2-2-a14b-text-to-video-turbo"),
    ("kie", "wan/2-2-a14b-image-to-video-turbo"),
    ("kie", "kling/v2-1-standard"),
    ("demo", "demo-art"),
}

MINIMAL_MODEL = """
[[model]]
id = "tiny"
name = "Tiny"
provider = "demo"
provider_model = "demo-art"

[model.description]
en = "Tiny"
ru = "Крошка"
uz = "Kichik"

[model.capabilities]
aspect_ratios = ["1:1", "16:9"]
output_formats = ["png"]
max_outputs = 2

[model.defaults]
aspect_ratio = "1:1"
output_format = "png"

[model.cost]
base = 2
"""


def write(tmp_path: Path, text: str, name: str = "models.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped file ---------------------------------------------------------------


def test_shipped_file_is_package_data() -> None:
    shipped = resources.files("lumigram.catalog").joinpath("models.toml")
    assert shipped.is_file()
    assert "model" in tomllib.loads(shipped.read_text("utf-8"))


def test_shipped_catalog_offers_the_expected_provider_models() -> None:
    assert {(m.provider, m.provider_model) for m in SHIPPED} == EXPECTED_PROVIDER_MODELS
    assert len(SHIPPED) == len(EXPECTED_PROVIDER_MODELS)


def test_shipped_catalog_is_sorted_and_described_in_every_language() -> None:
    keys = [(m.sort, m.id) for m in SHIPPED]
    assert keys == sorted(keys)
    for model in SHIPPED:
        assert model.description.en
        assert model.description.ru
        assert model.description.uz
        assert model.description_for("ru") == model.description.ru
        assert model.description_for("de") == model.description.en
        assert 1 <= model.capabilities.max_outputs <= 4


def test_flux_defaults() -> None:
    flux = SHIPPED["flux-1.1-pro"]
    assert flux.provider_model == "black-forest-labs/flux-1.1-pro"
    resolved = flux.validate_settings()
    assert resolved.aspect_ratio == "1:1"
    assert resolved.output_format == "webp"
    assert resolved.safety_level == 2
    assert resolved.prompt_upsampling is True


def test_demo_entry_fits_what_the_demo_provider_accepts() -> None:
    demo = SHIPPED["demo"]
    offered = demo.provider_capabilities()
    assert demo.provider_model == DEMO_MODEL
    assert set(offered.aspect_ratios) <= set(DEMO_CAPABILITIES.aspect_ratios)
    assert set(offered.output_formats) <= set(DEMO_CAPABILITIES.output_formats)
    assert offered.max_outputs <= DEMO_CAPABILITIES.max_outputs
    assert offered.max_reference_images <= DEMO_CAPABILITIES.max_reference_images
    assert offered.outputs == DEMO_CAPABILITIES.outputs


def test_loading_a_path_gives_the_same_catalog(tmp_path: Path) -> None:
    text = resources.files("lumigram.catalog").joinpath("models.toml").read_text("utf-8")
    assert load_catalog(write(tmp_path, text)).models == SHIPPED.models


# --- lookup and availability --------------------------------------------------------------


def test_get_and_lookup() -> None:
    assert SHIPPED.get("dall-e-3") is SHIPPED["dall-e-3"]
    assert SHIPPED.get("nope") is None
    assert "dall-e-3" in SHIPPED
    assert "nope" not in SHIPPED
    with pytest.raises(KeyError, match="nope"):
        SHIPPED["nope"]


def test_available_needs_a_configured_provider_except_demo() -> None:
    assert [m.id for m in SHIPPED.available(set())] == ["demo"]
    replicate = SHIPPED.available({"replicate"})
    assert {m.provider for m in replicate} == {"replicate", "demo"}
    assert [m.id for m in replicate] == [
        "flux-1.1-pro",
        "nano-banana",
        "seedream-4",
        "nano-banana-pro",
        "demo",
    ]
    everything = SHIPPED.available({"replicate", "openai", "gemini", "huggingface", "kie"})
    assert everything == list(SHIPPED)


# --- overrides ------------------------------------------------------------------------------


def test_override_merges_changes_adds_and_disables(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        """
[[model]]
id = "flux-1.1-pro"
premium = true
[model.cost]
base = 12
[model.description]
ru = "Новое описание"

[[model]]
id = "dall-e-3"
enabled = false
"""
        + MINIMAL_MODEL,
        "override.toml",
    )
    catalog = load_catalog(override=override)
    flux = catalog["flux-1.1-pro"]
    assert flux.premium is True
    assert flux.price() == 12
    assert flux.description.ru == "Новое описание"
    assert flux.description.en == SHIPPED["flux-1.1-pro"].description.en  # merged, not replaced
    assert flux.capabilities == SHIPPED["flux-1.1-pro"].capabilities
    assert catalog.get("dall-e-3") is None
    assert "dall-e-3" not in [m.id for m in catalog.available({"openai"})]
    assert catalog["tiny"].price({"num_outputs": 2}) == 4


def test_override_can_disable_the_demo_model(tmp_path: Path) -> None:
    override = write(tmp_path, '[[model]]\nid = "demo"\nenabled = false\n', "override.toml")
    assert load_catalog(override=override).available(set()) == []


def test_override_replaces_lists_wholesale(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        '[[model]]\nid = "demo"\n[model.capabilities]\naspect_ratios = ["1:1"]\n',
        "override.toml",
    )
    assert load_catalog(override=override)["demo"].capabilities.aspect_ratios == ("1:1",)


def test_an_incomplete_new_model_in_an_override_is_named(tmp_path: Path) -> None:
    override = write(tmp_path, '[[model]]\nid = "brand-new"\nname = "New"\n', "override.toml")
    with pytest.raises(CatalogError) as caught:
        load_catalog(override=override)
    message = str(caught.value)
    assert "model 'brand-new'" in message
    assert "provider: required key is missing" in message
    assert "override.toml" in message


# --- strict validation --------------------------------------------------------------------


def catalog_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, text))
    return str(caught.value)


def test_unknown_key_is_rejected_naming_model_and_field(tmp_path: Path) -> None:
    message = catalog_error(
        tmp_path, MINIMAL_MODEL.replace("max_outputs = 2", 'max_outputs = 2\ncolour = "red"')
    )
    assert "model 'tiny'" in message
    assert "capabilities.colour" in message
    assert "unknown key" in message


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    assert "unknown top-level key" in catalog_error(tmp_path, "models = []\n" + MINIMAL_MODEL)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('provider = "demo"', 'provider = "midjourney"', "provider"),
        ("base = 2", "base = -1", "cost.base"),
        ("base = 2", 'base = "2"', "cost.base"),
        ("max_outputs = 2", "max_outputs = 5", "capabilities.max_outputs"),
        ('["1:1", "16:9"]', '["1:1", "wide"]', "must look like"),
        ('["1:1", "16:9"]', '["1:1", "1:1"]', "twice"),
        ('output_formats = ["png"]', 'output_formats = ["gif"]', "capabilities.output_formats"),
        ('aspect_ratio = "1:1"', 'aspect_ratio = "9:16"', "defaults.aspect_ratio"),
        ('id = "tiny"', 'id = "Tiny Model!"', "id"),
        ('ru = "Крошка"', "", "description.ru: required key is missing"),
        (
            "base = 2",
            "base = 2\n[model.cost.surcharges.quality]\nhd = 3",
            "cost.surcharges.quality",
        ),
    ],
)
def test_invalid_fields_are_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in MINIMAL_MODEL
    message = catalog_error(tmp_path, MINIMAL_MODEL.replace(old, new))
    assert expected in message
    assert "tiny" in message or "Tiny Model!" in message


def test_duplicate_ids_bad_toml_and_missing_files(tmp_path: Path) -> None:
    assert "defined twice" in catalog_error(tmp_path, MINIMAL_MODEL + MINIMAL_MODEL)
    assert "not valid TOML" in catalog_error(tmp_path, "[[model]\n")
    assert "no string 'id'" in catalog_error(tmp_path, '[[model]]\nname = "x"\n')
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.toml")


def test_video_models_need_durations(tmp_path: Path) -> None:
    text = MINIMAL_MODEL.replace("max_outputs = 2", 'max_outputs = 2\nkind = "video"')
    assert "durations" in catalog_error(tmp_path, text)


# --- settings validation --------------------------------------------------------------------


def test_validate_settings_fills_defaults() -> None:
    resolved = SHIPPED["nano-banana-pro"].validate_settings({"aspect_ratio": "16:9"})
    assert resolved == Settings(
        aspect_ratio="16:9", output_format="jpeg", num_outputs=1, resolution="2K"
    )
    assert SHIPPED["demo"].validate_settings(Settings(output_format="JPG")).output_format == "jpeg"


@pytest.mark.parametrize(
    ("model", "given", "field"),
    [
        ("flux-1.1-pro", {"aspect_ratio": "7:5"}, "aspect_ratio"),
        ("flux-1.1-pro", {"output_format": "gif"}, "output_format"),
        ("flux-1.1-pro", {"num_outputs": 2}, "num_outputs"),
        ("gpt-image-1", {"num_outputs": 0}, "num_outputs"),
        ("flux-1.1-pro", {"reference_images": 2}, "reference_images"),
        ("dall-e-3", {"reference_images": 1}, "reference_images"),
        ("dall-e-3", {"seed": 1}, "seed"),
        ("demo", {"seed": -1}, "seed"),
        ("flux-1.1-pro", {"negative_prompt": "blur"}, "negative_prompt"),
        ("dall-e-3", {"prompt_upsampling": True}, "prompt_upsampling"),
        ("flux-1.1-pro", {"safety_level": 6}, "safety_level"),
        ("dall-e-3", {"safety_level": 1}, "safety_level"),
        ("dall-e-3", {"quality": "high"}, "quality"),
        ("flux-1.1-pro", {"resolution": "4K"}, "resolution"),
        ("demo", {"duration_seconds": 5}, "duration_seconds"),
        ("demo", {"colour": "red"}, "colour"),
        ("demo", {"num_outputs": "2"}, "num_outputs"),
    ],
)
def test_unsupported_settings_are_rejected(model: str, given: dict[str, Any], field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        SHIPPED[model].validate_settings(given)
    assert caught.value.field == field
    assert caught.value.model_id == model
    assert model in str(caught.value)


def test_settings_a_model_does_not_offer_may_be_left_off_or_false() -> None:
    resolved = SHIPPED["dall-e-3"].validate_settings(
        {"prompt_upsampling": False, "negative_prompt": "  "}
    )
    assert resolved.prompt_upsampling is None
    assert resolved.negative_prompt is None


# --- pricing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "given", "expected"),
    [
        ("flux-1.1-pro", {}, 8),
        ("demo", {"num_outputs": 4}, 4),
        ("gpt-image-1", {}, 9),  # medium quality by default
        ("gpt-image-1", {"quality": "low"}, 3),
        ("gpt-image-1", {"quality": "high", "aspect_ratio": "3:2", "num_outputs": 2}, 78),
        ("dall-e-3", {"quality": "hd", "aspect_ratio": "16:9"}, 24),
        ("nano-banana-pro", {"resolution": "4K"}, 60),
        ("gemini-3-pro-image", {"resolution": "2K"}, 27),
    ],
)
def test_price(model: str, given: dict[str, Any], expected: int) -> None:
    assert SHIPPED[model].price(given) == expected


def test_price_validates_settings() -> None:
    with pytest.raises(SettingsError):
        SHIPPED["flux-1.1-pro"].price({"num_outputs": 3})


def spec_with_cost(cost: dict[str, Any], kind: str = "image") -> ModelSpec:
    capabilities: dict[str, Any] = {
        "kind": kind,
        "aspect_ratios": ["1:1", "16:9"],
        "output_formats": ["png", "jpeg"],
        "max_outputs": 4,
        "max_reference_images": 4,
        "qualities": ["low", "high"],
        "resolutions": ["1K", "4K"],
    }
    defaults: dict[str, Any] = {
        "aspect_ratio": "1:1",
        "output_format": "png",
        "quality": "low",
        "resolution": "1K",
    }
    if kind == "video":
        capabilities["durations"] = [5, 10]
        capabilities["output_formats"] = ["mp4"]
        capabilities["max_outputs"] = 1
        defaults["duration_seconds"] = 5
        defaults["output_format"] = "mp4"
    return ModelSpec.model_validate(
        {
            "id": "synthetic",
            "name": "Synthetic",
            "provider": "demo",
            "provider_model": "demo-art",
            "description": {"en": "x", "ru": "x", "uz": "x"},
            "capabilities": capabilities,
            "defaults": defaults,
            "cost": cost,
        }
    )


def test_price_formula() -> None:
    spec = spec_with_cost(
        {
            "base": 10,
            "per_extra_output": 4,
            "per_reference_image": 1,
            "surcharges": {"quality": {"high": 5}, "aspect_ratio": {"16:9": 2}},
        }
    )
    assert spec.price() == 10
    # (10 + 5 + 2) for the first, (4 + 5 + 2) for each of two more, and 3 references.
    chosen = {"num_outputs": 3, "quality": "high", "aspect_ratio": "16:9", "reference_images": 3}
    assert spec.price(chosen) == 17 + 2 * 11 + 3


def test_video_is_priced_per_second() -> None:
    spec = spec_with_cost({"base": 10, "per_second": 3}, kind="video")
    assert spec.price() == 10 + 5 * 3
    assert spec.price({"duration_seconds": 10}) == 10 + 10 * 3
    with pytest.raises(SettingsError):
        spec.price({"duration_seconds": 7})


def model_settings(model: ModelSpec) -> st.SearchStrategy[dict[str, Any]]:
    caps = model.capabilities

    def optional(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
        return st.sampled_from((None, *values)) if values else st.none()

    return st.fixed_dictionaries(
        {
            "aspect_ratio": optional(caps.aspect_ratios),
            "output_format": optional(caps.output_formats),
            "num_outputs": st.integers(1, caps.max_outputs),
            "quality": optional(caps.qualities),
            "resolution": optional(caps.resolutions),
            "safety_level": optional(caps.safety_levels),
            "reference_images": st.integers(0, caps.max_reference_images),
            "duration_seconds": optional(caps.durations),
        }
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), model=st.sampled_from(SHIPPED.models))
def test_shipped_prices_are_non_negative_and_monotonic_in_outputs(
    data: st.DataObject, model: ModelSpec
) -> None:
    chosen = data.draw(model_settings(model))
    price = model.price(chosen)
    assert price >= 0
    if chosen["num_outputs"] < model.capabilities.max_outputs:
        assert model.price({**chosen, "num_outputs": chosen["num_outputs"] + 1}) >= price


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(0, 1000),
    per_extra=st.none() | st.integers(0, 1000),
    per_reference=st.integers(0, 100),
    high=st.integers(0, 500),
    wide=st.integers(0, 500),
    uhd=st.integers(0, 500),
    quality=st.sampled_from(["low", "high"]),
    aspect=st.sampled_from(["1:1", "16:9"]),
    resolution=st.sampled_from(["1K", "4K"]),
    references=st.integers(0, 4),
    outputs=st.integers(1, 3),
)
def test_any_cost_table_prices_monotonically(
    base: int,
    per_extra: int | None,
    per_reference: int,
    high: int,
    wide: int,
    uhd: int,
    quality: str,
    aspect: str,
    resolution: str,
    references: int,
    outputs: int,
) -> None:
    spec = spec_with_cost(
        {
            "base": base,
            "per_extra_output": per_extra,
            "per_reference_image": per_reference,
            "surcharges": {
                "quality": {"high": high},
                "aspect_ratio": {"16:9": wide},
                "resolution": {"4K": uhd},
            },
        }
    )
    chosen = {
        "quality": quality,
        "aspect_ratio": aspect,
        "resolution": resolution,
        "reference_images": references,
    }
    fewer = spec.price({**chosen, "num_outputs": outputs})
    more = spec.price({**chosen, "num_outputs": outputs + 1})
    assert 0 <= base <= fewer <= more


def test_catalog_rejects_duplicate_ids_given_directly() -> None:
    spec = SHIPPED["demo"]
    with pytest.raises(CatalogError):
        Catalog([spec, spec])


# --- provider cost and the custom-prompt surcharge ------------------------------------------


def test_every_shipped_model_has_a_provider_cost() -> None:
    for model in SHIPPED:
        assert model.provider_cost is not None, model.id
        assert model.custom_surcharge is None  # CUSTOM_PROMPT_SURCHARGE applies
    assert SHIPPED["demo"].provider_cost_usd() == 0


@pytest.mark.parametrize(
    ("model", "given", "expected"),
    [
        ("flux-1.1-pro", {}, 0.04),
        ("gpt-image-1", {}, 0.042),  # medium quality, 1024x1024
        ("gpt-image-1", {"quality": "low"}, 0.011),
        ("gpt-image-1", {"quality": "low", "aspect_ratio": "3:2"}, 0.0165),
        ("gpt-image-1", {"quality": "high", "aspect_ratio": "2:3"}, 0.2505),
        ("gpt-image-1", {"num_outputs": 2, "reference_images": 4}, 2 * 0.042 + 4 * 0.01),
        ("dall-e-3", {"quality": "hd"}, 0.08),
        ("dall-e-3", {"quality": "hd", "aspect_ratio": "16:9"}, 0.12),
        ("nano-banana-pro", {"resolution": "1K"}, 0.15),
        ("nano-banana-pro", {"resolution": "4K"}, 0.30),
        ("gemini-3-pro-image", {"resolution": "4K", "reference_images": 2}, 0.24 + 0.0022),
        ("seedream-4", {"resolution": "4K", "reference_images": 10}, 0.03),
    ],
)
def test_provider_cost(model: str, given: dict[str, Any], expected: float) -> None:
    assert SHIPPED[model].provider_cost_usd(given) == pytest.approx(expected)


def test_provider_cost_validates_settings_and_may_be_unknown() -> None:
    with pytest.raises(SettingsError):
        SHIPPED["flux-1.1-pro"].provider_cost_usd({"num_outputs": 3})
    assert spec_with_cost({"base": 1}).provider_cost_usd() is None


def test_standard_price_is_what_the_defaults_cost() -> None:
    gpt = SHIPPED["gpt-image-1"]
    assert gpt.at_standard_price()
    assert gpt.at_standard_price({"num_outputs": 4, "reference_images": 4})
    assert gpt.at_standard_price({"quality": "low", "aspect_ratio": "3:2"})  # 8 <= 9 credits
    assert not gpt.at_standard_price({"aspect_ratio": "3:2"})  # 14 credits
    assert not gpt.at_standard_price({"quality": "high"})
    assert SHIPPED["nano-banana-pro"].at_standard_price({"resolution": "1K"})
    assert not SHIPPED["nano-banana-pro"].at_standard_price({"resolution": "4K"})
    assert gpt.standard_price({"quality": "high", "num_outputs": 2}) == 18


PRICED_MODEL = MINIMAL_MODEL.replace(
    'output_formats = ["png"]', 'output_formats = ["png", "jpeg"]\nqualities = ["std", "hd"]'
).replace('output_format = "png"', 'output_format = "png"\nquality = "std"')


def with_cost(text: str) -> str:
    return PRICED_MODEL + "\n[model.provider_cost]\n" + text


def test_a_provider_cost_table_is_read(tmp_path: Path) -> None:
    text = with_cost(
        "usd = 0.05\nper_reference_image = 0.01\n"
        "[model.provider_cost.surcharges.quality]\nhd = 0.05\n"
        '[model.provider_cost.factors.aspect_ratio]\n"16:9" = 2.0\n'
    )
    tiny = load_catalog(write(tmp_path, text))["tiny"]
    assert tiny.provider_cost_usd() == pytest.approx(0.05)
    assert tiny.provider_cost_usd({"quality": "hd", "aspect_ratio": "16:9"}) == pytest.approx(0.2)
    assert tiny.provider_cost_usd({"num_outputs": 2}) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ("usd = 0.1\ncolour = 1", "provider_cost.colour: unknown key"),
        ("per_reference_image = 0.1", "provider_cost.usd: required key is missing"),
        ("usd = -0.1", "provider_cost.usd"),
        ('usd = "0.1"', "provider_cost.usd"),
        ("usd = true", "provider_cost.usd"),
        ("usd = 0.1\n[model.provider_cost.surcharges.quality]\nultra = 0.1", "'ultra' is not an"),
        ("usd = 0.1\n[model.provider_cost.surcharges.quality]\nstd = 0.1", "is the default"),
        ("usd = 0.1\n[model.provider_cost.factors.output_format]\npng = 2.0", "is the default"),
        ("usd = 0.1\n[model.provider_cost.factors.quality]\nhd = 0.0", "factors.quality.hd"),
        ("usd = 0.1\n[model.provider_cost.surcharges.seed]\n1 = 0.1", "surcharges.seed"),
        ("usd = 0.1\n[model.provider_cost.surcharges.quality]\nhd = -0.2", "below zero"),
    ],
)
def test_invalid_provider_costs_are_reported(tmp_path: Path, cost: str, expected: str) -> None:
    message = catalog_error(tmp_path, with_cost(cost))
    assert "model 'tiny'" in message
    assert expected in message


@pytest.mark.parametrize(
    ("value", "ok"), [("0", True), ("3", True), ("-1", False), ('"1"', False), ("1.5", False)]
)
def test_custom_surcharge_is_whole_credits(tmp_path: Path, value: str, ok: bool) -> None:
    text = MINIMAL_MODEL.replace(
        'provider_model = "demo-art"', f'provider_model = "demo-art"\ncustom_surcharge = {value}'
    )
    if ok:
        assert load_catalog(write(tmp_path, text))["tiny"].custom_surcharge == int(value)
    else:
        assert "custom_surcharge" in catalog_error(tmp_path, text)


def test_an_override_changes_one_provider_price(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        '[[model]]\nid = "nano-banana-pro"\ncustom_surcharge = 5\n'
        "[model.provider_cost]\nusd = 0.2\n",
        "override.toml",
    )
    pro = load_catalog(override=override)["nano-banana-pro"]
    assert pro.custom_surcharge == 5
    assert pro.provider_cost_usd() == pytest.approx(0.2)
    assert pro.provider_cost_usd({"resolution": "4K"}) == pytest.approx(0.35)  # kept: +0.15


@settings(max_examples=200, deadline=None)
@given(data=st.data(), model=st.sampled_from(SHIPPED.models))
def test_shipped_provider_costs_are_non_negative_and_grow_with_outputs(
    data: st.DataObject, model: ModelSpec
) -> None:
    chosen = data.draw(model_settings(model))
    cost = model.provider_cost_usd(chosen)
    assert cost is not None
    assert cost >= 0
    if chosen["num_outputs"] < model.capabilities.max_outputs:
        more = model.provider_cost_usd({**chosen, "num_outputs": chosen["num_outputs"] + 1})
        assert more is not None
        assert more >= cost
