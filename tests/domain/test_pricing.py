"""Pricing rules: invoice Stars from credits, package Stars, margins."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.money import Package, parse_packages
from lumigram.domain.pricing import (
    FALLBACK_STARS_PER_CREDIT,
    Margin,
    custom_surcharge,
    invoice_rate,
    invoice_stars,
    package_stars,
    stars_usd,
    tier_image_stars,
)

DEFAULT_PACKAGES = parse_packages("100:100,500:450,1200:1000")


def test_the_invoice_rate_is_the_dearest_package() -> None:
    assert invoice_rate(DEFAULT_PACKAGES) == Fraction(1)  # 100 Stars for 100 credits
    # The dearest need not be the smallest.
    assert invoice_rate(parse_packages("10:50,20:300")) == Fraction(15)


def test_without_packages_the_fallback_rate_applies() -> None:
    assert invoice_rate(()) == FALLBACK_STARS_PER_CREDIT == 1
    assert invoice_stars(8, ()) == 8


def test_invoice_stars_round_up_and_are_at_least_one() -> None:
    packages = parse_packages("3:10")  # 3.33 Stars per credit
    assert invoice_stars(1, packages) == 4
    assert invoice_stars(3, packages) == 10
    assert invoice_stars(4, packages) == 14
    assert invoice_stars(0, packages) == 1  # Telegram takes no invoice of 0 Stars
    assert invoice_stars(30, DEFAULT_PACKAGES) == 30  # Nano Banana Pro
    with pytest.raises(ValueError, match="never negative"):
        invoice_stars(-1, packages)


@given(
    price=st.integers(0, 10_000),
    packages=st.lists(
        st.tuples(st.integers(1, 1000), st.integers(1, 10_000)),
        max_size=4,
        unique_by=lambda pair: pair[0],
    ),
)
def test_an_invoice_never_costs_less_than_the_same_credits_in_any_package(
    price: int, packages: list[tuple[int, int]]
) -> None:
    offered = tuple(Package(f"c{c}", c, s) for c, s in packages)
    stars = invoice_stars(price, offered)
    for package in offered:
        assert stars >= package_stars(price, package)
    exact = price * invoice_rate(offered)
    assert stars - 1 < max(Fraction(1), exact)  # rounded up by less than 1


def test_package_stars_are_exact() -> None:
    big = Package("c120", 120, 1000)
    assert package_stars(30, big) == Fraction(250)
    assert package_stars(8, big) == Fraction(200, 3)


def test_custom_surcharge_prefers_the_models_own() -> None:
    assert custom_surcharge(None, 2) == 2
    assert custom_surcharge(0, 2) == 0
    assert custom_surcharge(5, 2) == 5


def test_margin() -> None:
    margin = Margin(revenue_usd=0.13, cost_usd=0.04)
    assert margin.usd == pytest.approx(0.09)
    assert margin.percent == pytest.approx(69.23, abs=0.01)
    assert not margin.negative
    loss = Margin(revenue_usd=0.0325, cost_usd=0.04)
    assert loss.negative
    assert loss.usd == pytest.approx(-0.0075)
    assert Margin(0.0, 0.0).percent is None
    assert not Margin(0.1, 0.1).negative


def test_stars_usd_and_tier_image_stars() -> None:
    assert stars_usd(100, 0.013) == pytest.approx(1.3)
    assert stars_usd(Fraction(25, 3), 0.013) == pytest.approx(0.10833, abs=1e-5)
    assert tier_image_stars(250, 30) == Fraction(25, 3)
    with pytest.raises(ValueError, match="STAR_USD_RATE"):
        stars_usd(1, 0)
    with pytest.raises(ValueError, match="at least one image"):
        tier_image_stars(250, 0)
