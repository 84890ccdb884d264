"""API keys: the format, the hash, the format check and the name rules."""

from __future__ import annotations

import hashlib
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.api_keys import (
    KEY_LENGTH,
    MAX_KEYS_PER_USER,
    MAX_NAME_LENGTH,
    PREFIX_LENGTH,
    ApiKey,
    InvalidKeyNameError,
    clean_name,
    default_name,
    hash_key,
    looks_like_key,
    new_key,
    new_signing_secret,
)

URL_SAFE = set(string.ascii_letters + string.digits + "-_")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_new_key_has_the_format_its_prefix_and_its_hash() -> None:
    plaintext, prefix, key_hash = new_key()
    assert plaintext.startswith("lg_")
    assert len(plaintext) == KEY_LENGTH == 43
    assert set(plaintext[3:]) <= URL_SAFE
    assert prefix == plaintext[:11]
    assert len(prefix) == PREFIX_LENGTH
    assert key_hash == hashlib.sha256(plaintext.encode()).hexdigest() == hash_key(plaintext)
    assert len(key_hash) == 64
    assert looks_like_key(plaintext)


def test_keys_and_secrets_are_random() -> None:
    keys = {new_key()[0] for _ in range(200)}
    assert len(keys) == 200
    secrets = {new_signing_secret() for _ in range(200)}
    assert len(secrets) == 200
    secret = secrets.pop()
    assert secret.startswith("whsec_")
    assert len(secret) == 6 + 32
    assert set(secret[6:]) <= URL_SAFE
    assert not looks_like_key(secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "lg_",
        "lg_" + "a" * 39,
        "lg_" + "a" * 41,
        "LG_" + "a" * 40,
        "lx_" + "a" * 40,
        "lg_" + "a" * 39 + "=",
        "lg_" + "a" * 39 + "+",
        "lg_" + "a" * 39 + " ",
        "lg_" + "a" * 40 + "\n",
        " lg_" + "a" * 40,
        "lg_" + "а" * 40,  # Cyrillic а
        "Bearer lg_" + "a" * 40,
    ],
)
def test_what_does_not_look_like_a_key(text: str) -> None:
    assert not looks_like_key(text)


def test_what_looks_like_a_key() -> None:
    assert looks_like_key("lg_" + "a" * 40)
    assert looks_like_key("lg_" + "-_" * 20)
    assert looks_like_key("lg_" + "Z9" * 20)


@given(st.data())
def test_a_key_matches_its_hash_and_no_one_character_change_does(data: st.DataObject) -> None:
    plaintext, _, key_hash = new_key()
    assert looks_like_key(plaintext)
    assert hash_key(plaintext) == key_hash
    position = data.draw(st.integers(0, len(plaintext) - 1))
    replacement = data.draw(st.characters().filter(lambda c: c != plaintext[position]))
    changed = plaintext[:position] + replacement + plaintext[position + 1 :]
    assert hash_key(changed) != key_hash


def test_names_are_stripped_and_limited() -> None:
    assert clean_name("  my script ") == "my script"
    assert clean_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH
    with pytest.raises(InvalidKeyNameError):
        clean_name("x" * (MAX_NAME_LENGTH + 1))
    with pytest.raises(InvalidKeyNameError):
        clean_name("two\nlines")
    assert clean_name("  Фото-бот 🤖 ") == "Фото-бот 🤖"


def test_the_default_name_is_the_first_free_key_number() -> None:
    assert clean_name(None) == "Key 1"
    assert clean_name("   ") == "Key 1"
    assert default_name(["Key 1", "Key 2"]) == "Key 3"
    assert default_name(["Key 2", "backup"]) == "Key 1"
    assert clean_name("", ["Key 1", "Key 3"]) == "Key 2"


def test_revoking_is_once_and_the_last_use_is_written_at_most_once_a_minute() -> None:
    assert MAX_KEYS_PER_USER == 5
    key = ApiKey(
        user_id=1, name="k", prefix="lg_x", key_hash="h", signing_secret="s", created_at=NOW
    )
    assert key.active
    assert key.needs_touch(NOW)
    key.last_used_at = NOW
    assert not key.needs_touch(NOW + timedelta(seconds=59))
    assert key.needs_touch(NOW + timedelta(minutes=1))
    assert key.revoke(NOW)
    assert not key.active
    assert key.revoked_at == NOW
    assert not key.revoke(NOW + timedelta(hours=1))
    assert key.revoked_at == NOW
