"""Pricing rules: a generation's price in Stars, and what each way of paying earns.

Prices are set in credits (the model catalog). A generation paid by invoice costs
its credits at the *dearest* package rate (the most Stars per credit, usually the
smallest package), rounded up, so paying per image is never cheaper than buying
credits. The operator's real income is ``STAR_USD_RATE`` dollars per Star; a
route's margin is that income less the provider's list price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from math import ceil

from lumigram.domain.money import Package

# Stars per credit for an invoice when no credit packages are sold (the default
# smallest package's rate: 10 credits for 100 Stars).
FALLBACK_STARS_PER_CREDIT = Fraction(1)


def invoice_rate(packages: Iterable[Package]) -> Fraction:
    """Stars per credit when paying by invoice: the dearest package's rate."""
    rates = [Fraction(package.stars, package.credits) for package in packages]
    return max(rates) if rates else FALLBACK_STARS_PER_CREDIT


def invoice_stars(price: int, packages: Iterable[Package]) -> int:
    """The Stars invoice for a generation whose price is ``price`` credits: rounded up,
    at least 1."""
    if price < 0:
        raise ValueError("a price is never negative")
    return max(1, ceil(price * invoice_rate(packages)))


def package_stars(price: int, package: Package) -> Fraction:
    """What ``price`` credits cost when bought in ``package`` (exact, not rounded)."""
    return price * Fraction(package.stars, package.credits)


def custom_surcharge(model_value: int | None, default: int) -> int:
    """Credits per image added for a custom prompt: the model's own value, else the default."""
    return default if model_value is None else model_value


@dataclass(frozen=True, slots=True)
class Margin:
    """What one image earns the operator on one route, in US dollars."""

    revenue_usd: float
    cost_usd: float

    @property
    def usd(self) -> float:
        return self.revenue_usd - self.cost_usd

    @property
    def percent(self) -> float | None:
        """The margin as a share of the revenue; None when nothing is earned."""
        return 100 * self.usd / self.revenue_usd if self.revenue_usd > 0 else None

    @property
    def negative(self) -> bool:
        # Below a hundredth of a cent is float noise, not a loss.
        return self.usd < -1e-9


def stars_usd(stars: Fraction | int, star_usd_rate: float) -> float:
    """What ``stars`` earn the operator, in dollars."""
    if star_usd_rate <= 0:
        raise ValueError("STAR_USD_RATE must be positive")
    return float(stars) * star_usd_rate


def tier_image_stars(tier_stars: int, tier_images: int) -> Fraction:
    """Stars a subscription earns per image of its allowance (all of it used)."""
    if tier_images <= 0:
        raise ValueError("a tier includes at least one image")
    return Fraction(tier_stars, tier_images)
