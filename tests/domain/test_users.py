from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.users import (
    REFERRAL_CODE_LENGTH,
    User,
    new_referral_code,
    parse_start_payload,
    pick_language,
)


def test_pick_language_from_telegram_codes() -> None:
    assert pick_language("ru", "en") == "ru"
    assert pick_language("uz-UZ", "en") == "uz"
    assert pick_language("de", "en") == "en"
    assert pick_language(None, "uz") == "uz"


def test_referral_codes_round_trip_through_the_start_payload() -> None:
    code = new_referral_code()
    assert len(code) == REFERRAL_CODE_LENGTH
    assert parse_start_payload(f"ref_{code}") == code


@given(st.text(max_size=80))
def test_parse_start_payload_never_accepts_garbage(payload: str) -> None:
    code = parse_start_payload(payload)
    if code is not None:
        assert payload == f"ref_{code}"
        assert (code.isalnum() and code.islower()) or code.isdigit()


def test_needs_refresh_only_when_something_changed_or_stale() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    user = User(
        id=1,
        language="en",
        referral_code="abcdefgh",
        created_at=now,
        last_seen_at=now,
        first_name="Ann",
        username="ann",
    )
    window = timedelta(minutes=5)
    later = now + timedelta(minutes=1)
    assert not user.needs_refresh(username="ann", first_name="Ann", now=later, resolution=window)
    assert user.needs_refresh(username="ann2", first_name="Ann", now=later, resolution=window)
    assert user.needs_refresh(username="ann", first_name="Anna", now=later, resolution=window)
    assert user.needs_refresh(username="ann", first_name="Ann", now=now + window, resolution=window)
