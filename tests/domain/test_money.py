from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.money import Account, capture_amount, choose_funding, referral_bonus


def test_funding_prefers_trial_then_allowance_then_credits() -> None:
    pick = choose_funding
    assert (
        pick(outputs=1, credit_price=5, trial=1, allowance=9, credit_balance=9).account
        is Account.TRIAL
    )
    assert (
        pick(outputs=2, credit_price=5, trial=1, allowance=2, credit_balance=9).account
        is Account.ALLOWANCE
    )
    funding = pick(outputs=2, credit_price=5, trial=1, allowance=1, credit_balance=5)
    assert funding is not None
    assert (funding.account, funding.amount) == (Account.CREDITS, 5)
    assert pick(outputs=1, credit_price=5, trial=0, allowance=0, credit_balance=4) is None


@given(st.integers(0, 10_000), st.integers(1, 8), st.data())
def test_capture_is_proportional_bounded_and_monotonic(
    amount: int, units: int, data: st.DataObject
) -> None:
    delivered = data.draw(st.integers(0, units))
    taken = capture_amount(amount, units, delivered)
    assert 0 <= taken <= amount
    assert capture_amount(amount, units, units) == amount
    assert capture_amount(amount, units, 0) == 0
    if delivered < units:
        assert taken <= capture_amount(amount, units, delivered + 1)


def test_capture_rejects_more_than_held() -> None:
    with pytest.raises(ValueError, match="delivered"):
        capture_amount(10, 2, 3)


@given(st.integers(0, 100_000), st.integers(0, 100))
def test_referral_bonus_never_exceeds_the_purchase(bought: int, percent: int) -> None:
    assert 0 <= referral_bonus(bought, percent) <= bought


def test_packages_parse_and_refuse_nonsense() -> None:
    from lumigram.domain.money import parse_packages

    packages = parse_packages("50:450, 10:100")
    assert [(p.id, p.credits, p.stars) for p in packages] == [("c10", 10, 100), ("c50", 50, 450)]
    for bad in ("10", "a:b", "0:10", "10:0", "10:100,10:90"):
        with pytest.raises(ValueError, match=r"credits|stars|same"):
            parse_packages(bad)
