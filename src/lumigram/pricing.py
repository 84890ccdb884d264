"""The price report of ``lumigram check-config``: what every model costs and earns, per route.

For each model of the catalog: its credits (preset mode and custom prompt), the
Stars of an invoice, the Stars through each credit package, the provider's list
price, and the margin per image on each route a user can pay by (an invoice,
each package, each subscription tier with the model in its plan). The table is
at each model's default settings; every offered combination of settings is
checked too, and each route whose worst case loses money becomes a warning.

``price_report`` and ``format_report`` are pure; ``print_price_report`` loads
the catalog named by the settings and prints.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from lumigram.catalog import Catalog, CatalogError, ModelSpec, load_catalog
from lumigram.config import DatabaseSettings, Settings
from lumigram.domain.generation import OutputKind
from lumigram.domain.money import Package
from lumigram.domain.pricing import (
    Margin,
    custom_surcharge,
    invoice_rate,
    invoice_stars,
    package_stars,
    stars_usd,
    tier_image_stars,
)
from lumigram.domain.subscriptions import Tier

__all__ = [
    "ModelRow",
    "PriceReport",
    "Route",
    "RouteKind",
    "WorstCase",
    "format_report",
    "price_report",
    "print_price_report",
]

_PRICED_SETTINGS = ("aspect_ratio", "output_format", "resolution", "quality")


class RouteKind(StrEnum):
    INVOICE = "invoice"
    PACKAGE = "package"
    TIER = "tier"


@dataclass(frozen=True, slots=True)
class Route:
    """One way of paying for an image."""

    kind: RouteKind
    name: str  # "invoice", "10:100" (credits:stars), or the tier's name
    package: Package | None = None
    tier: Tier | None = None

    def allows(self, model: ModelSpec) -> bool:
        """A tier's allowance pays for a premium model only if the tier includes them,
        and never for a video (allowances are images; videos cost credits)."""
        if self.tier is None:
            return True
        return model.capabilities.kind is not OutputKind.VIDEO and self.tier.perks.allows_model(
            model.premium
        )


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model at its default settings; amounts are per image."""

    model: ModelSpec
    credits: int  # preset mode
    custom_credits: int  # custom prompt
    invoice_stars: Fraction
    custom_invoice_stars: Fraction
    package_stars: tuple[Fraction, ...]  # in the order of PriceReport.packages
    cost_usd: float | None  # None: the catalog has no provider_cost
    margins: tuple[Margin | None, ...]  # per route; None: the route cannot pay for it


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The lowest margin per image of a route, over every model and offered setting."""

    route: Route
    model: ModelSpec
    usd: float
    settings: str  # what differs from the model's defaults ("" if nothing)

    def describe(self) -> str:
        return f"{self.model.id}" + (f", {self.settings}" if self.settings else "")


@dataclass(frozen=True, slots=True)
class PriceReport:
    star_usd_rate: float
    invoice_rate: Fraction  # Stars per credit of an invoice
    packages: tuple[Package, ...]
    routes: tuple[Route, ...]
    rows: tuple[ModelRow, ...]
    worst: tuple[WorstCase, ...]  # per route that pays for at least one model
    warnings: tuple[str, ...]


def price_report(
    catalog: Iterable[ModelSpec],
    packages: Sequence[Package],
    tiers: Sequence[Tier],
    star_usd_rate: float,
    custom_prompt_surcharge: int = 0,
) -> PriceReport:
    """Prices and margins of every model on every route (see the module docstring)."""
    packages = tuple(packages)
    routes = (
        Route(RouteKind.INVOICE, "invoice"),
        *(Route(RouteKind.PACKAGE, f"{p.credits}:{p.stars}", package=p) for p in packages),
        *(Route(RouteKind.TIER, t.name, tier=t) for t in tiers),
    )
    rows: list[ModelRow] = []
    warnings: list[str] = []
    worst: dict[str, WorstCase] = {}
    for model in catalog:
        surcharge = custom_surcharge(model.custom_surcharge, custom_prompt_surcharge)
        defaults = model.validate_settings()
        outputs = defaults.num_outputs
        price = model.price(defaults)
        custom = price + surcharge * outputs
        cost = model.provider_cost_usd(defaults)
        rows.append(
            ModelRow(
                model=model,
                credits=_per_image(price, outputs),
                custom_credits=_per_image(custom, outputs),
                invoice_stars=Fraction(_invoice(model, price, 0, outputs, packages), outputs),
                custom_invoice_stars=Fraction(
                    _invoice(model, price, custom - price, outputs, packages), outputs
                ),
                package_stars=tuple(package_stars(price, p) / outputs for p in packages),
                cost_usd=None if cost is None else cost / outputs,
                margins=tuple(
                    _margin(model, route, defaults.model_dump(), packages, star_usd_rate)
                    for route in routes
                ),
            )
        )
        if cost is None:
            warnings.append(
                f"WARNING: {model.id}: the catalog has no provider_cost, "
                "so its margins cannot be checked"
            )
            continue
        for case in _worst_cases(model, routes, packages, star_usd_rate):
            if case.usd < -1e-9:
                warnings.append(
                    f"WARNING: {model.id} via {case.route.name}: margin {_usd(case.usd)} "
                    "per image" + (f" ({case.settings})" if case.settings else "")
                )
            if case.route.name not in worst or case.usd < worst[case.route.name].usd - 1e-9:
                worst[case.route.name] = case
    return PriceReport(
        star_usd_rate=star_usd_rate,
        invoice_rate=invoice_rate(packages),
        packages=packages,
        routes=routes,
        rows=tuple(rows),
        worst=tuple(worst[route.name] for route in routes if route.name in worst),
        warnings=tuple(warnings),
    )


def _per_image(amount: int, outputs: int) -> int:
    return -(-amount // outputs)


def _invoice(
    model: ModelSpec, price: int, extra: int, outputs: int, packages: tuple[Package, ...]
) -> int:
    """Stars of the invoice, as GenerationService.quote computes them."""
    if model.stars is None:
        return invoice_stars(price + extra, packages)
    return model.stars * outputs + (invoice_stars(extra, packages) if extra else 0)


def _margin(
    model: ModelSpec,
    route: Route,
    settings: dict[str, Any],
    packages: tuple[Package, ...],
    rate: float,
) -> Margin | None:
    """The margin per image of one request with ``settings`` (a preset mode, the cheaper
    one) paid by ``route``; None if the route cannot pay for it."""
    if not route.allows(model):
        return None
    if route.tier is not None and not model.at_standard_price(settings):
        return None  # the allowance pays only for standard settings
    cost = model.provider_cost_usd(settings)
    if cost is None:
        cost = 0.0
    chosen = model.validate_settings(settings)
    outputs = chosen.num_outputs
    if route.tier is not None:
        stars = tier_image_stars(route.tier.stars, route.tier.images) * outputs
    elif route.package is not None:
        stars = package_stars(model.price(chosen), route.package)
    else:
        stars = Fraction(_invoice(model, model.price(chosen), 0, outputs, packages))
    return Margin(stars_usd(stars, rate) / outputs, cost / outputs)


def _combinations(model: ModelSpec) -> Iterator[dict[str, Any]]:
    """Every offered combination of the priced settings, with one and the most images
    and with no and the most reference images (prices are linear in both)."""
    caps = model.capabilities
    choices: dict[str, tuple[Any, ...]] = {
        "aspect_ratio": caps.aspect_ratios,
        "output_format": caps.output_formats,
        "resolution": caps.resolutions or (None,),
        "quality": caps.qualities or (None,),
        "duration_seconds": caps.durations or (None,),
        "num_outputs": tuple(sorted({1, caps.max_outputs})),
        "reference_images": tuple(sorted({0, caps.max_reference_images})),
    }
    for values in itertools.product(*choices.values()):
        yield {k: v for k, v in zip(choices, values, strict=True) if v is not None}


def _worst_cases(
    model: ModelSpec, routes: Sequence[Route], packages: tuple[Package, ...], rate: float
) -> list[WorstCase]:
    """Per route that pays for ``model``: its lowest margin per image over all settings
    (the default settings when nothing is lower)."""
    defaults = model.validate_settings().model_dump(exclude_none=True)
    worst: dict[str, tuple[float, dict[str, Any]]] = {}
    for settings in itertools.chain([defaults], _combinations(model)):
        for route in routes:
            margin = _margin(model, route, settings, packages, rate)
            if margin is None:
                continue
            if route.name not in worst or margin.usd < worst[route.name][0] - 1e-9:
                worst[route.name] = (margin.usd, settings)
    return [
        WorstCase(route, model, worst[route.name][0], _describe(model, worst[route.name][1]))
        for route in routes
        if route.name in worst
    ]


def _describe(model: ModelSpec, settings: dict[str, Any]) -> str:
    """The settings that differ from the model's defaults, for a warning."""
    defaults = model.validate_settings().model_dump()
    parts = [
        f"{name}={settings[name]}"
        for name in (*_PRICED_SETTINGS, "duration_seconds")
        if name in settings and settings[name] != defaults.get(name)
    ]
    outputs = settings.get("num_outputs", 1)
    if outputs != defaults["num_outputs"]:
        parts.append(f"{outputs} images")
    references = settings.get("reference_images", 0)
    if references:
        parts.append(f"{references} reference images")
    return ", ".join(parts)


# --- formatting ------------------------------------------------------------------------


def _usd(amount: float) -> str:
    return f"{'-' if amount < -5e-7 else '+'}${abs(amount):.3f}"


def _stars(amount: Fraction) -> str:
    if amount.denominator == 1:
        return str(amount.numerator)
    return f"{float(amount):.1f}"


def _cell(margin: Margin | None) -> str:
    if margin is None:
        return "—"
    percent = margin.percent
    return _usd(margin.usd) + (f" {percent:.0f}%" if percent is not None else "")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]


def format_report(report: PriceReport) -> list[str]:
    """The report as lines of text: two tables, then the warnings (or a line saying none)."""
    rate = _stars(report.invoice_rate)
    source = "the dearest package" if report.packages else "no packages: the fallback"
    lines = [
        "",
        f"Prices per image at each model's default settings "
        f"(invoice: {rate} Stars per credit, {source}):",
    ]
    header = [
        "model",
        "credits",
        "invoice Stars",
        *(f"Stars via {p.credits}:{p.stars}" for p in report.packages),
        "provider $",
    ]
    lines += _table(
        header,
        [
            [
                row.model.id + (" *" if row.model.premium else ""),
                f"{row.credits}/{row.custom_credits}",
                f"{_stars(row.invoice_stars)}/{_stars(row.custom_invoice_stars)}",
                *(_stars(stars) for stars in row.package_stars),
                "?" if row.cost_usd is None else f"{row.cost_usd:.4f}",
            ]
            for row in report.rows
        ],
    )
    lines.append(
        "(credits and invoice: preset mode / custom prompt; * premium: only tiers with "
        "premium_models pay for it)"
    )
    lines += [
        "",
        f"Margin per image (STAR_USD_RATE={report.star_usd_rate:g} $ per Star, less the "
        "provider's price; — : the route does not pay for the model):",
    ]
    lines += _table(
        ["model", *(route.name for route in report.routes)],
        [[row.model.id, *(_cell(margin) for margin in row.margins)] for row in report.rows],
    )
    if report.worst:
        lines += ["", "Lowest margin per image over every model and setting:"]
        lines += [
            f"  {case.route.name}: {_usd(case.usd)} ({case.describe()})" for case in report.worst
        ]
    lines.append("")
    if report.warnings:
        lines += list(report.warnings)
    else:
        lines.append("No negative margin: every route pays more than the provider charges.")
    return lines


def print_price_report(settings: DatabaseSettings) -> None:
    """Print the price report for the configured catalog, packages and tiers."""
    if not isinstance(settings, Settings):
        return
    try:
        catalog: Catalog = load_catalog(override=settings.catalog_file)
    except CatalogError as error:
        first = str(error).splitlines()[0]
        print(f"The price table is not shown: {first}", file=sys.stderr)
        return
    report = price_report(
        catalog,
        settings.packages(),
        settings.tiers(),
        settings.star_usd_rate,
        settings.custom_prompt_surcharge,
    )
    for line in format_report(report):
        print(line)
