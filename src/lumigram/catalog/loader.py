"""Loading and validating the model catalog (``models.toml``), pricing and settings checks.

The catalog is read once at start-up: the file shipped with the package,
optionally merged with an operator override file (see the comment at the top
of ``models.toml`` for the format). Everything after loading is pure:
``ModelSpec.validate_settings`` checks a user's choices against what the
model offers and fills in its defaults, and ``ModelSpec.price`` turns
settings into credits.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from lumigram.domain.generation import Capabilities, OutputKind

__all__ = [
    "DEMO_PROVIDER",
    "PROVIDERS",
    "Catalog",
    "CatalogError",
    "CostSpec",
    "Descriptions",
    "ModelCapabilities",
    "ModelDefaults",
    "ModelSpec",
    "ProviderCostSpec",
    "Settings",
    "SettingsError",
    "load_catalog",
]

ProviderName = Literal["replicate", "openai", "gemini", "huggingface", "kie", "demo"]
PROVIDERS: Final[frozenset[str]] = frozenset(
    {"replicate", "openai", "gemini", "huggingface", "kie", "demo"}
)
DEMO_PROVIDER: Final = "demo"  # needs no configuration, so its models are always offered

OutputFormat = Literal["png", "jpeg", "webp", "mp4"]  # mp4: video models only
SurchargeSetting = Literal["aspect_ratio", "output_format", "resolution", "quality"]
_ASPECT_RATIO: Final = re.compile(r"^[1-9][0-9]?:[1-9][0-9]?$")
_FORMAT_ALIASES: Final = {"jpg": "jpeg"}
MAX_SEED: Final = 2**32 - 1

NonNegative = Annotated[StrictInt, Field(ge=0)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=300)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=64)]
Option = Annotated[StrictStr, Field(min_length=1, max_length=32)]


class CatalogError(ValueError):
    """The catalog file (or the override) is unreadable or invalid; the message says where."""


class SettingsError(ValueError):
    """A user's settings are not offered by the model.

    ``field`` names the setting (``"aspect_ratio"``, ``"num_outputs"``, ...) so
    the UI can show a translated message; ``str(error)`` is for logs.
    """

    def __init__(self, model_id: str, field: str, message: str) -> None:
        super().__init__(f"model {model_id!r}: {field}: {message}")
        self.model_id = model_id
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: tuple[Any, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists a value twice")


class Descriptions(_Strict):
    en: Text
    ru: Text
    uz: Text


class ModelCapabilities(_Strict):
    """What users may choose for one model (a subset of what its API accepts)."""

    kind: OutputKind = OutputKind.IMAGE
    max_reference_images: Annotated[StrictInt, Field(ge=0, le=16)] = 0
    # Photos the model needs (image-to-video: the photo it animates); 0: optional.
    min_reference_images: Annotated[StrictInt, Field(ge=0, le=16)] = 0
    aspect_ratios: Annotated[tuple[StrictStr, ...], Field(min_length=1)]
    output_formats: Annotated[tuple[OutputFormat, ...], Field(min_length=1)]
    max_outputs: Annotated[StrictInt, Field(ge=1, le=4)] = 1  # the UI offers 1..4
    seed: StrictBool = False
    negative_prompt: StrictBool = False
    prompt_upsampling: StrictBool = False
    safety_levels: tuple[StrictInt, ...] = ()
    resolutions: tuple[Option, ...] = ()
    qualities: tuple[Option, ...] = ()
    durations: tuple[Annotated[StrictInt, Field(ge=1, le=600)], ...] = ()

    @field_validator("aspect_ratios")
    @classmethod
    def _aspect_ratios(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ratio in value:
            if ratio != "auto" and not _ASPECT_RATIO.match(ratio):
                raise ValueError(
                    f'aspect ratio {ratio!r} must look like "W:H", e.g. "16:9", or be "auto" '
                    "(a video that takes the shape of its photo)"
                )
        _unique(value, "aspect_ratios")
        return value

    @field_validator("output_formats", "safety_levels", "resolutions", "qualities", "durations")
    @classmethod
    def _no_duplicates(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        _unique(value, "the list")
        return value

    @model_validator(mode="after")
    def _kind_matches_durations(self) -> Self:
        if self.kind is OutputKind.VIDEO and not self.durations:
            raise ValueError("a video model needs durations")
        if self.kind is OutputKind.IMAGE and self.durations:
            raise ValueError("an image model has no durations")
        if (self.kind is OutputKind.VIDEO) != ("mp4" in self.output_formats):
            raise ValueError('output_formats: "mp4" is for video models, and only mp4 is')
        if self.kind is OutputKind.VIDEO and len(self.output_formats) != 1:
            raise ValueError('output_formats: "mp4" is for video models, and only mp4 is')
        if self.min_reference_images > self.max_reference_images:
            raise ValueError("min_reference_images exceeds max_reference_images")
        return self


class ModelDefaults(_Strict):
    """Settings used where the user chose nothing."""

    aspect_ratio: StrictStr
    output_format: OutputFormat
    num_outputs: Annotated[StrictInt, Field(ge=1, le=4)] = 1
    prompt_upsampling: StrictBool = False
    safety_level: StrictInt | None = None
    resolution: StrictStr | None = None
    quality: StrictStr | None = None
    duration_seconds: StrictInt | None = None


class CostSpec(_Strict):
    """Credits for a request; see ``ModelSpec.price`` for the formula."""

    base: NonNegative
    per_extra_output: NonNegative | None = None  # None: the same as base
    per_reference_image: NonNegative = 0
    per_second: NonNegative = 0
    surcharges: dict[SurchargeSetting, dict[StrictStr, NonNegative]] = Field(default_factory=dict)


Usd = Annotated[StrictFloat, Field(ge=0, le=100)]
UsdChange = Annotated[StrictFloat, Field(ge=-100, le=100)]
Factor = Annotated[StrictFloat, Field(gt=0, le=100)]


class ProviderCostSpec(_Strict):
    """What the provider charges us, in US dollars, from its public list price.

    ``usd`` is one output at the model's *default* settings. A chosen value of a
    setting adds ``surcharges`` (negative when cheaper than the default) and then
    multiplies by ``factors`` (e.g. 1.5 for a bigger image); reference images and
    video seconds are added per request. See ``ModelSpec.provider_cost_usd``.
    """

    usd: Usd
    per_reference_image: Usd = 0.0
    per_second: Usd = 0.0
    surcharges: dict[SurchargeSetting, dict[StrictStr, UsdChange]] = Field(default_factory=dict)
    factors: dict[SurchargeSetting, dict[StrictStr, Factor]] = Field(default_factory=dict)


class Settings(_Strict):
    """A user's choices for one request. ``ModelSpec.validate_settings`` resolves defaults."""

    aspect_ratio: StrictStr | None = None
    output_format: StrictStr | None = None
    num_outputs: StrictInt = 1
    seed: StrictInt | None = None
    negative_prompt: StrictStr | None = None
    prompt_upsampling: StrictBool | None = None
    safety_level: StrictInt | None = None
    resolution: StrictStr | None = None
    quality: StrictStr | None = None
    reference_images: StrictInt = 0  # how many reference images come with the request
    duration_seconds: StrictInt | None = None


class ModelSpec(_Strict):
    """One offered model, as validated from the catalog."""

    id: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
    name: Name
    provider: ProviderName
    provider_model: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    enabled: StrictBool = True
    premium: StrictBool = False
    # Stars per image when paid by invoice; None: the credit price at the dearest
    # package rate (lumigram.domain.pricing.invoice_stars).
    stars: Annotated[StrictInt, Field(ge=1, le=10000)] | None = None
    # Credits per image added for a custom prompt; None: CUSTOM_PROMPT_SURCHARGE.
    custom_surcharge: Annotated[StrictInt, Field(ge=0, le=10000)] | None = None
    sort: StrictInt = 100
    description: Descriptions
    capabilities: ModelCapabilities
    defaults: ModelDefaults
    cost: CostSpec
    # None: unknown; `lumigram check-config` then warns that the margins cannot be checked.
    provider_cost: ProviderCostSpec | None = None

    @model_validator(mode="after")
    def _defaults_and_prices_are_offered(self) -> Self:
        caps, defaults = self.capabilities, self.defaults
        problems: list[str] = []

        def offered(field: str, value: object, allowed: tuple[Any, ...]) -> None:
            if value is None and allowed:
                problems.append(f"defaults.{field} is required (choose one of {_list(allowed)})")
            elif value is not None and value not in allowed:
                where = _list(allowed) if allowed else "nothing: the model does not offer it"
                problems.append(f"defaults.{field} {value!r} is not offered ({where})")

        offered("aspect_ratio", defaults.aspect_ratio, caps.aspect_ratios)
        offered("output_format", defaults.output_format, caps.output_formats)
        offered("safety_level", defaults.safety_level, caps.safety_levels)
        offered("resolution", defaults.resolution, caps.resolutions)
        offered("quality", defaults.quality, caps.qualities)
        offered("duration_seconds", defaults.duration_seconds, caps.durations)
        if defaults.num_outputs > caps.max_outputs:
            problems.append("defaults.num_outputs exceeds capabilities.max_outputs")
        if defaults.prompt_upsampling and not caps.prompt_upsampling:
            problems.append("defaults.prompt_upsampling is on but the model does not offer it")
        choices: dict[str, tuple[str, ...]] = {
            "aspect_ratio": caps.aspect_ratios,
            "output_format": caps.output_formats,
            "resolution": caps.resolutions,
            "quality": caps.qualities,
        }
        for setting, prices in self.cost.surcharges.items():
            for value in prices:
                if value not in choices[setting]:
                    problems.append(
                        f"cost.surcharges.{setting}.{value!r} is not an offered {setting} "
                        f"({_list(choices[setting]) or 'none'})"
                    )
        if self.provider_cost is not None:
            problems.extend(self._provider_cost_problems(choices))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _provider_cost_problems(self, choices: dict[str, tuple[str, ...]]) -> list[str]:
        cost = self.provider_cost
        assert cost is not None
        defaults = self.defaults.model_dump()
        problems: list[str] = []
        for table, neutral, values in (
            ("surcharges", 0.0, cost.surcharges),
            ("factors", 1.0, cost.factors),
        ):
            for setting, prices in values.items():
                for value, amount in prices.items():
                    where = f"provider_cost.{table}.{setting}.{value!r}"
                    if value not in choices[setting]:
                        problems.append(
                            f"{where} is not an offered {setting} "
                            f"({_list(choices[setting]) or 'none'})"
                        )
                    elif value == defaults.get(setting) and amount != neutral:
                        problems.append(
                            f"{where} is the default {setting}, whose cost is provider_cost.usd"
                        )
        cheapest = cost.usd + sum(
            min(0.0, *prices.values()) for prices in cost.surcharges.values() if prices
        )
        if cheapest < 0:
            problems.append("provider_cost.surcharges take the cost below zero")
        return problems

    # --- pure domain rules ----------------------------------------------------

    def description_for(self, language: str) -> str:
        """The description in ``language`` (en, ru, uz), English for anything else."""
        texts = {"en": self.description.en, "ru": self.description.ru, "uz": self.description.uz}
        return texts.get(language, self.description.en)

    def provider_capabilities(self) -> Capabilities:
        """The offered capabilities in the provider interface's terms."""
        caps = self.capabilities
        return Capabilities(
            outputs=frozenset({caps.kind}),
            max_reference_images=caps.max_reference_images,
            aspect_ratios=caps.aspect_ratios,
            output_formats=tuple(caps.output_formats),
            max_outputs=caps.max_outputs,
            seed=caps.seed,
            negative_prompt=caps.negative_prompt,
            prompt_upsampling=caps.prompt_upsampling,
            safety_levels=caps.safety_levels,
        )

    def validate_settings(self, settings: Settings | Mapping[str, Any] | None = None) -> Settings:
        """Check ``settings`` against what this model offers and fill in its defaults.

        Returns complete settings: aspect ratio and output format are always
        set, and so are safety level, resolution, quality and duration where
        the model offers them. Raises ``SettingsError`` naming the offending
        setting for anything the model does not offer.
        """
        chosen = self._parse(settings)
        caps, defaults = self.capabilities, self.defaults

        def pick(field: str, value: Any, default: Any, allowed: tuple[Any, ...]) -> Any:
            if value is None:
                return default if allowed else None
            if value not in allowed:
                where = f"choose one of {_list(allowed)}" if allowed else "not offered"
                raise SettingsError(self.id, field, f"{value!r} is not supported ({where})")
            return value

        output_format = chosen.output_format
        if output_format is not None:
            output_format = _FORMAT_ALIASES.get(output_format.lower(), output_format.lower())
        if not 1 <= chosen.num_outputs <= caps.max_outputs:
            raise SettingsError(self.id, "num_outputs", f"must be between 1 and {caps.max_outputs}")
        if not 0 <= chosen.reference_images <= caps.max_reference_images:
            limit = caps.max_reference_images
            message = f"at most {limit} reference images" if limit else "no reference images"
            raise SettingsError(self.id, "reference_images", f"{message} are accepted")
        if chosen.seed is not None:
            if not caps.seed:
                raise SettingsError(self.id, "seed", "this model does not take a seed")
            if not 0 <= chosen.seed <= MAX_SEED:
                raise SettingsError(self.id, "seed", f"must be between 0 and {MAX_SEED}")
        negative = (chosen.negative_prompt or "").strip() or None
        if negative is not None and not caps.negative_prompt:
            raise SettingsError(self.id, "negative_prompt", "this model does not take one")
        upsampling: bool | None
        if caps.prompt_upsampling:
            upsampling = (
                defaults.prompt_upsampling
                if chosen.prompt_upsampling is None
                else chosen.prompt_upsampling
            )
        elif chosen.prompt_upsampling:
            raise SettingsError(self.id, "prompt_upsampling", "this model does not offer it")
        else:
            upsampling = None

        return Settings(
            aspect_ratio=pick(
                "aspect_ratio", chosen.aspect_ratio, defaults.aspect_ratio, caps.aspect_ratios
            ),
            output_format=pick(
                "output_format", output_format, defaults.output_format, caps.output_formats
            ),
            num_outputs=chosen.num_outputs,
            seed=chosen.seed,
            negative_prompt=negative,
            prompt_upsampling=upsampling,
            safety_level=pick(
                "safety_level", chosen.safety_level, defaults.safety_level, caps.safety_levels
            ),
            resolution=pick("resolution", chosen.resolution, defaults.resolution, caps.resolutions),
            quality=pick("quality", chosen.quality, defaults.quality, caps.qualities),
            reference_images=chosen.reference_images,
            duration_seconds=pick(
                "duration_seconds",
                chosen.duration_seconds,
                defaults.duration_seconds,
                caps.durations,
            ),
        )

    def price(self, settings: Settings | Mapping[str, Any] | None = None) -> int:
        """Credits for a request with ``settings`` (validated first; ``SettingsError`` if bad).

        Each output costs its per-output price plus the surcharges for the
        chosen aspect ratio, format, resolution and quality; the first output's
        price is ``base``, each further one ``per_extra_output`` (default
        ``base``). Reference images and video seconds are added on top. Every
        term is a non-negative integer, so the price never falls when outputs
        are added and is never negative.
        """
        chosen = self.validate_settings(settings)
        cost = self.cost
        values: dict[str, str | None] = {
            "aspect_ratio": chosen.aspect_ratio,
            "output_format": chosen.output_format,
            "resolution": chosen.resolution,
            "quality": chosen.quality,
        }
        surcharge = sum(
            prices.get(values[setting] or "", 0) for setting, prices in cost.surcharges.items()
        )
        extra = cost.base if cost.per_extra_output is None else cost.per_extra_output
        return (
            cost.base
            + surcharge
            + (chosen.num_outputs - 1) * (extra + surcharge)
            + chosen.reference_images * cost.per_reference_image
            + (chosen.duration_seconds or 0) * cost.per_second
        )

    def standard_price(self, settings: Settings | Mapping[str, Any] | None = None) -> int:
        """Credits for the same number of outputs, references and seconds at the defaults
        of every priced setting (aspect ratio, format, resolution, quality)."""
        chosen = self.validate_settings(settings)
        return self.price(
            chosen.model_copy(
                update={
                    "aspect_ratio": None,
                    "output_format": None,
                    "resolution": None,
                    "quality": None,
                }
            )
        )

    def at_standard_price(self, settings: Settings | Mapping[str, Any] | None = None) -> bool:
        """The settings cost no more than the model's defaults do (per image, for the same
        references): what a subscription's allowance image pays for."""
        return self.price(settings) <= self.standard_price(settings)

    def provider_cost_usd(
        self, settings: Settings | Mapping[str, Any] | None = None
    ) -> float | None:
        """What the provider charges us for a request with ``settings``, in US dollars
        (None when the catalog does not say).

        Each output costs ``usd`` plus the surcharges of the chosen values, times their
        factors; reference images and video seconds are added once per request.
        """
        cost = self.provider_cost
        if cost is None:
            return None
        chosen = self.validate_settings(settings)
        values: dict[str, str | None] = {
            "aspect_ratio": chosen.aspect_ratio,
            "output_format": chosen.output_format,
            "resolution": chosen.resolution,
            "quality": chosen.quality,
        }
        per_output = cost.usd + sum(
            prices.get(values[setting] or "", 0.0) for setting, prices in cost.surcharges.items()
        )
        for setting, factors in cost.factors.items():
            per_output *= factors.get(values[setting] or "", 1.0)
        return max(0.0, per_output) * chosen.num_outputs + (
            chosen.reference_images * cost.per_reference_image
            + (chosen.duration_seconds or 0) * cost.per_second
        )

    def _parse(self, settings: Settings | Mapping[str, Any] | None) -> Settings:
        if settings is None:
            return Settings()
        if isinstance(settings, Settings):
            return settings
        try:
            return Settings.model_validate(dict(settings))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            raise SettingsError(self.id, field, _describe(error)) from None


class Catalog:
    """The enabled models, in menu order (``sort``, then ``id``)."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        ordered = sorted((m for m in models if m.enabled), key=lambda m: (m.sort, m.id))
        self._by_id: dict[str, ModelSpec] = {m.id: m for m in ordered}
        if len(self._by_id) != len(ordered):
            raise CatalogError("two models share an id")

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        return tuple(self._by_id.values())

    def get(self, model_id: str) -> ModelSpec | None:
        """The model with ``model_id``, or None (unknown or disabled)."""
        return self._by_id.get(model_id)

    def available(self, configured_providers: Collection[str]) -> list[ModelSpec]:
        """Models to offer: those whose provider is configured, and the demo provider's always."""
        return [
            m
            for m in self._by_id.values()
            if m.provider == DEMO_PROVIDER or m.provider in configured_providers
        ]

    def __getitem__(self, model_id: str) -> ModelSpec:
        try:
            return self._by_id[model_id]
        except KeyError:
            raise KeyError(f"no model {model_id!r} in the catalog") from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


# --- loading -------------------------------------------------------------------

SHIPPED_NAME: Final = "models.toml"


def load_catalog(path: Path | None = None, override: Path | None = None) -> Catalog:
    """Read the catalog (the shipped ``models.toml`` unless ``path`` is given) and validate it.

    With ``override``, entries there are merged into the catalog by ``id``:
    tables are merged key by key and other values replaced, so an override
    may change just a price; unknown ids add models (which must be complete);
    ``enabled = false`` removes a model. Raises ``CatalogError`` listing
    every problem, each naming the file, the model id and the field.
    """
    if path is None:
        text = resources.files("lumigram.catalog").joinpath(SHIPPED_NAME).read_text("utf-8")
        source = f"lumigram/catalog/{SHIPPED_NAME}"
    else:
        text, source = _read(path), str(path)
    entries = _entries(_parse_toml(text, source), source)
    sources = dict.fromkeys(entries, source)
    if override is not None:
        override_source = str(override)
        for model_id, entry in _entries(
            _parse_toml(_read(override), override_source), override_source
        ).items():
            shipped = sources.get(model_id)
            entries[model_id] = _deep_merge(entries.get(model_id, {}), entry)
            sources[model_id] = f"{shipped} + {override_source}" if shipped else override_source

    models: list[ModelSpec] = []
    problems: list[str] = []
    for model_id, entry in entries.items():
        try:
            models.append(ModelSpec.model_validate(entry))
        except ValidationError as exc:
            problems.extend(
                f"{sources[model_id]}: model {model_id!r}: {_where(error)}{_describe(error)}"
                for error in exc.errors()
            )
    if problems:
        raise CatalogError("invalid model catalog:\n  " + "\n  ".join(problems))
    return Catalog(models)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read the model catalog {path}: {exc}") from exc


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc


def _entries(document: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """The ``[[model]]`` tables by id, checking the file's outer shape."""
    unknown = set(document) - {"model"}
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level key(s) {_list(tuple(sorted(unknown)))}; "
            "models are [[model]] tables"
        )
    raw = document.get("model", [])
    if not isinstance(raw, list):
        raise CatalogError(f"{source}: 'model' must be an array of tables ([[model]])")
    entries: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(raw, start=1):
        model_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise CatalogError(f"{source}: model #{index} has no string 'id'")
        if model_id in entries:
            raise CatalogError(f"{source}: model {model_id!r} is defined twice")
        entries[model_id] = entry
    return entries


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _where(error: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    return f"{loc}: " if loc else ""


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (not part of the catalog format; check the spelling)"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _list(values: tuple[Any, ...]) -> str:
    return ", ".join(str(v) for v in values)
