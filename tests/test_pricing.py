"""Prices that cannot lose money: the price report, the invoice rule, `check-config`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.catalog import Catalog, ModelSpec, load_catalog
from lumigram.config import Settings, load_settings
from lumigram.container import Infrastructure, Services
from lumigram.domain.pricing import invoice_rate, package_stars
from lumigram.pricing import PriceReport, RouteKind, format_report, price_report
from lumigram.providers.registry import build_providers
from lumigram.services.generation import Draft
from lumigram.storage.local import LocalStorage
from tests.conftest import VALID_TOKEN

SHIPPED = load_catalog()
WARNING = re.compile(r"^WARNING: (\S+) via (.+): margin -\$\d+\.\d{3} per image( \(.+\))?$")
OLD_TIERS = [
    {"id": "basic", "name": "Basic", "stars": 250, "images": 100},
    {"id": "pro", "name": "Pro", "stars": 750, "images": 400, "premium_models": True},
]


def settings(**overrides: Any) -> Settings:
    return load_settings(bot_token=VALID_TOKEN, **overrides)


def report_for(config: Settings, catalog: Catalog = SHIPPED) -> PriceReport:
    return price_report(
        catalog,
        config.packages(),
        config.tiers(),
        config.star_usd_rate,
        config.custom_prompt_surcharge,
    )


def write_override(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "override.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped defaults ---------------------------------------------------------------


def test_the_shipped_defaults_give_no_negative_margin_on_any_route() -> None:
    report = report_for(settings())
    assert report.warnings == ()
    assert {route.kind for route in report.routes} == set(RouteKind)
    assert [route.name for route in report.routes] == [
        "invoice",
        "100:100",
        "500:450",
        "1200:1000",
        "Basic",
        "Pro",
    ]
    for row in report.rows:
        assert row.cost_usd is not None, f"{row.model.id} has no provider cost"
        for route, margin in zip(report.routes, row.margins, strict=True):
            if margin is not None:
                assert margin.usd > 0, f"{row.model.id} via {route.name}"
    # The worst case over every setting, per route, is positive too.
    assert len(report.worst) == len(report.routes)
    assert all(case.usd > 0 for case in report.worst), report.worst


def test_premium_models_are_paid_only_by_tiers_that_include_them() -> None:
    report = report_for(settings())
    routes = [route.name for route in report.routes]
    rows = {row.model.id: row for row in report.rows}
    for model_id in ("nano-banana-pro", "gemini-3-pro-image"):
        margins = dict(zip(routes, rows[model_id].margins, strict=True))
        assert margins["Basic"] is None
        assert margins["Pro"] is not None
        assert margins["invoice"] is not None  # credits and invoices pay for them
    assert all(margin is not None for margin in rows["flux-1.1-pro"].margins)


def test_the_old_defaults_lose_money_and_are_warned_about() -> None:
    """Basic at 2.5 Stars an image ($0.0325) is less than FLUX costs ($0.04)."""
    report = report_for(settings(subscription_tiers=OLD_TIERS))
    assert "WARNING: flux-1.1-pro via Basic: margin -$0.007 per image" in report.warnings
    assert "WARNING: nano-banana-pro via Pro: margin -$0.126 per image" in report.warnings
    assert all(WARNING.match(line) for line in report.warnings), report.warnings
    assert not any("via invoice" in line for line in report.warnings)
    # A premium model is never counted for a tier without premium models.
    assert not any("nano-banana-pro via Basic" in line for line in report.warnings)


def test_the_worst_setting_is_named_in_the_warning() -> None:
    # 250 Stars for 40 images: $0.081 an image, enough for GPT Image 1 alone ($0.042)
    # but not with four reference images ($0.082).
    tiers = [{"id": "basic", "name": "Basic", "stars": 250, "images": 40}]
    report = report_for(settings(subscription_tiers=tiers))
    assert report.warnings == (
        "WARNING: gpt-image-1 via Basic: margin -$0.001 per image (4 reference images)",
    )


def test_the_allowance_counts_only_standard_settings() -> None:
    """GPT Image 1 at high quality costs $0.25 at 3:2, far more than an allowance image
    earns; the allowance does not pay for it (credits or Stars do), so no warning."""
    gpt = SHIPPED["gpt-image-1"]
    assert not gpt.at_standard_price({"quality": "high"})
    assert gpt.at_standard_price({"quality": "low", "aspect_ratio": "3:2"})
    report = report_for(settings())
    basic = next(case for case in report.worst if case.route.name == "Basic")
    assert basic.model.id == "gpt-image-1"
    assert basic.settings == "4 reference images"  # medium 1:1, the standard


def test_a_model_that_costs_more_than_it_earns_is_warned_about(tmp_path: Path) -> None:
    override = write_override(tmp_path, '[[model]]\nid = "demo"\n[model.provider_cost]\nusd = 2\n')
    old_packages = "10:100,50:450,120:1000"
    report = report_for(
        settings(subscription_tiers=[], credit_packages=old_packages),
        load_catalog(override=override),
    )
    # 1 credit: 10 Stars by invoice ($0.13), 8.3 Stars through the biggest package.
    assert "WARNING: demo via invoice: margin -$1.870 per image" in report.warnings
    assert "WARNING: demo via 120:1000: margin -$1.892 per image" in report.warnings
    # Four images at once cost four times as much: the same margin per image.
    assert all(WARNING.match(line) for line in report.warnings)


def test_a_model_without_a_provider_cost_is_warned_about(tmp_path: Path) -> None:
    shipped = SHIPPED["demo"].model_dump(exclude_none=True)
    shipped.update(id="mystery", name="Mystery")
    shipped.pop("provider_cost")
    catalog = Catalog([*SHIPPED, ModelSpec.model_validate(shipped)])
    report = report_for(settings(), catalog)
    assert report.warnings == (
        "WARNING: mystery: the catalog has no provider_cost, so its margins cannot be checked",
    )
    assert "?" in "\n".join(format_report(report))


def test_the_table_shows_every_column() -> None:
    old_packages = "10:100,50:450,120:1000"
    lines = format_report(
        report_for(settings(custom_prompt_surcharge=2, credit_packages=old_packages))
    )
    text = "\n".join(lines)
    assert "invoice: 10 Stars per credit, the dearest package" in text
    header = next(line for line in lines if line.startswith("model ") and "credits" in line)
    for column in ("invoice Stars", "Stars via 10:100", "Stars via 120:1000", "provider $"):
        assert column in header
    flux = next(line for line in lines if line.startswith("flux-1.1-pro ") and "/" in line)
    # 8 credits preset, 10 with the custom prompt surcharge; 80 / 100 Stars by invoice.
    assert re.search(r"\b8/10\s+80/100\s+80\s+72\s+66\.7\s+0\.0400$", flux), flux
    assert "nano-banana-pro *" in text
    margins = next(line for line in lines if line.startswith("model ") and "Basic" in line)
    assert margins.split() == ["model", "invoice", "10:100", "50:450", "120:1000", "Basic", "Pro"]
    assert "No negative margin" in text


def test_no_packages_and_no_tiers() -> None:
    report = report_for(settings(credit_packages="", subscription_tiers=[]))
    assert [route.name for route in report.routes] == ["invoice"]
    assert report.invoice_rate == 1
    assert "no packages: the fallback" in "\n".join(format_report(report))


# --- the invoice price of a generation ----------------------------------------------------


class NoDispatch:
    async def dispatch(self, job_id: int, *, delay: float = 0.0, priority: int = 0) -> None:
        raise AssertionError("quotes queue nothing")


@pytest.fixture
async def infra(tmp_path: Path) -> AsyncIterator[Any]:
    """The bot's wiring with Replicate configured (never called: quotes are offline)."""
    made: list[Infrastructure] = []

    def build(**overrides: Any) -> Infrastructure:
        config = settings(replicate_api_token="r8_not-a-real-token", **overrides)
        built = Infrastructure(
            settings=config,
            catalog=load_catalog(override=config.catalog_file),
            providers=build_providers(config),
            storage=LocalStorage(tmp_path / "files"),
            dispatcher=NoDispatch(),
        )
        made.append(built)
        return built

    yield build
    for built in made:
        for provider in built.providers.values():
            await provider.aclose()


async def quote(
    sessionmaker: async_sessionmaker[AsyncSession], infra: Infrastructure, draft: Draft
) -> tuple[int, int]:
    async with sessionmaker() as session:
        result = await Services(session, infra).generation.quote(draft)
    return result.price, result.stars


async def test_an_invoice_for_nano_banana_pro_costs_its_credits_at_the_dearest_package(
    sessionmaker: async_sessionmaker[AsyncSession], infra: Any
) -> None:
    built = infra()
    packages = built.settings.packages()
    credits_price, stars = await quote(sessionmaker, built, Draft("nano-banana-pro", "nature"))
    assert credits_price == 30
    dearest = max(package_stars(credits_price, package) for package in packages)
    assert stars == dearest == 30  # what 30 credits cost in the 100-credit package
    assert stars == credits_price * invoice_rate(packages)
    four_k = Draft("nano-banana-pro", "city", settings={"resolution": "4K"})
    assert await quote(sessionmaker, built, four_k) == (60, 60)
    dearer = infra(credit_packages="10:100,50:450,120:1000")  # 10 Stars per credit
    assert await quote(sessionmaker, dearer, Draft("nano-banana-pro", "nature")) == (30, 300)
    # Other packages: the dearest rate is 9 Stars per credit.
    cheaper = infra(credit_packages="10:90,100:800")
    assert await quote(sessionmaker, cheaper, Draft("nano-banana-pro", "nature")) == (30, 270)


async def test_the_custom_prompt_surcharge_applies_to_credits_and_stars(
    sessionmaker: async_sessionmaker[AsyncSession], infra: Any, tmp_path: Path
) -> None:
    built = infra(custom_prompt_surcharge=2, credit_packages="10:100")  # 10 Stars per credit
    assert await quote(sessionmaker, built, Draft("demo", "nature")) == (1, 10)
    assert await quote(sessionmaker, built, Draft("demo", "custom")) == (3, 30)
    two = Draft("demo", "custom", settings={"num_outputs": 2})
    assert await quote(sessionmaker, built, two) == (2 + 2 * 2, 60)
    # A model's own surcharge wins, and a model's own `stars` gets the surcharge on top.
    override = write_override(
        tmp_path,
        '[[model]]\nid = "flux-1.1-pro"\ncustom_surcharge = 0\n'
        '[[model]]\nid = "nano-banana"\nstars = 50\ncustom_surcharge = 1\n',
    )
    own = infra(custom_prompt_surcharge=2, catalog_file=override, credit_packages="10:100")
    assert await quote(sessionmaker, own, Draft("flux-1.1-pro", "custom")) == (8, 80)
    assert await quote(sessionmaker, own, Draft("nano-banana", "nature")) == (8, 50)
    assert await quote(sessionmaker, own, Draft("nano-banana", "custom")) == (9, 60)


async def test_quotes_say_whether_the_allowance_pays(
    sessionmaker: async_sessionmaker[AsyncSession], infra: Any
) -> None:
    built = infra(openai_api_key="sk-not-a-real-key")
    async with sessionmaker() as session:
        generation = Services(session, built).generation
        standard = await generation.quote(Draft("gpt-image-1", "nature"))
        high = await generation.quote(Draft("gpt-image-1", "nature", settings={"quality": "high"}))
    assert standard.standard
    assert (standard.price, standard.stars) == (9, 9)
    assert not high.standard
    assert (high.price, high.stars) == (34, 34)


# --- lumigram check-config ----------------------------------------------------------------


def check_config(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lumigram", "check-config"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "BOT_TOKEN": VALID_TOKEN, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_prints_the_price_table_without_warnings(tmp_path: Path) -> None:
    result = check_config(tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "STAR_USD_RATE=0.013" in out
    assert "CUSTOM_PROMPT_SURCHARGE=0" in out
    assert "Prices per image at each model's default settings" in out
    assert "Margin per image (STAR_USD_RATE=0.013" in out
    for model in SHIPPED:
        assert re.search(rf"^{re.escape(model.id)}\b", out, re.MULTILINE), model.id
    assert "WARNING" not in out + result.stderr
    assert "No negative margin" in out
    assert out.rstrip().endswith("Configuration OK.")
    assert out.index("SUPPORT_CONTACT=") < out.index("Prices per image")  # after the settings


def test_check_config_warns_about_every_negative_margin(tmp_path: Path) -> None:
    import json

    result = check_config(tmp_path, SUBSCRIPTION_TIERS=json.dumps(OLD_TIERS), STAR_USD_RATE="0.01")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING")]
    assert warnings
    assert all(WARNING.match(line) for line in warnings), warnings
    assert "WARNING: flux-1.1-pro via Basic: margin -$0.015 per image" in warnings
    assert len({line.split(":")[1] for line in warnings}) == len(warnings)  # one per route
