from __future__ import annotations

from pathlib import Path

import pytest

from lumigram.config import ConfigError, load_settings, mask_url
from tests.conftest import VALID_TOKEN


def test_missing_token_names_it_and_says_how_to_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "BOT_TOKEN" in message
    assert "@BotFather" in message
    assert "\n" not in message


def test_malformed_token_is_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "not-a-token-secret-value")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BOT_TOKEN" in str(caught.value)
    assert "not-a-token-secret-value" not in str(caught.value)


def test_reads_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"BOT_TOKEN={VALID_TOKEN}\nADMIN_IDS=5, 7\nDEFAULT_LANGUAGE=uz\n"
    )
    settings = load_settings()
    assert settings.bot_token.get_secret_value() == VALID_TOKEN
    assert settings.admin_ids == frozenset({5, 7})
    assert settings.default_language == "uz"
    assert settings.is_sqlite


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADMIN_IDS", "12,abc"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DEFAULT_LANGUAGE", "de"),
        ("LOG_LEVEL", "LOUD"),
        ("TELEGRAM_API_BASE", "ftp://example"),
        ("THROTTLE_RATE", "0"),
    ],
)
def test_each_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", VALID_TOKEN)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"Configuration error: {name} ")
    assert "\n" not in str(caught.value)


def test_masked_output_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:hunter2secret@db:5432/lumi")
    shown = load_settings().masked()
    assert VALID_TOKEN not in str(shown)
    assert "hunter2secret" not in shown["DATABASE_URL"]
    assert shown["DATABASE_URL"] == "postgresql+asyncpg://app:****@db:5432/lumi"


def test_mask_url_leaves_passwordless_urls() -> None:
    assert mask_url("sqlite+aiosqlite:///./data/x.db") == "sqlite+aiosqlite:///./data/x.db"


def test_env_example_documents_every_setting_and_works(tmp_path: Path) -> None:
    from lumigram.config import Settings

    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"{name.upper()}=" in example, f"{name.upper()} is not in .env.example"
    (tmp_path / ".env").write_text(example)
    with pytest.raises(ConfigError) as caught:
        load_settings()  # the example as shipped: only the token is missing
    assert str(caught.value).startswith("Configuration error: BOT_TOKEN is not set")
    (tmp_path / ".env").write_text(example.replace("BOT_TOKEN=", f"BOT_TOKEN={VALID_TOKEN}", 1))
    settings = load_settings()
    assert settings.provider_keys() == {}


# --- JSON and list settings: the entry and the field are named ------------------------

TIER = '{"id": "basic", "name": "Basic", "stars": 250, "images": 100}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{bad json", "SUBSCRIPTION_TIERS is not valid JSON: Expecting property name"),
        ("[" + TIER + ", {", "is not valid JSON: Expecting property name enclosed in"),
        (f'[{TIER}, {{"id": "pro", "name": "Pro", "stars": 750}}]', "tier 2 (id 'pro')"),
        (f'[{TIER}, {{"id": "pro", "name": "Pro", "stars": 750}}]', "field 'images' is missing"),
        ('[{"name": "X", "stars": 1, "images": 1}]', "tier 1: field 'id' is missing"),
        (TIER[:-1] + ', "colour": "red"}', "must be a JSON list of tiers"),
        ("[" + TIER[:-1] + ', "colour": "red"}]', "unknown field 'colour'"),
        ('[{"id": "x", "name": "X", "stars": 0, "images": 1}]', "field 'stars': Input should be"),
        ("[1]", "tier 1 is not a JSON object"),
        (f"[{TIER}, {TIER}]", "tier id 'basic' is used twice"),
    ],
)
def test_subscription_tiers_problems_name_the_tier_and_the_field(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("SUBSCRIPTION_TIERS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("Configuration error: SUBSCRIPTION_TIERS "), message
    assert expected in message
    assert "is not set" not in message
    assert "\n" not in message


def test_bad_json_in_dotenv_says_where_it_is(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f'BOT_TOKEN={VALID_TOKEN}\nSUBSCRIPTION_TIERS=[{{"id":\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "Configuration error: SUBSCRIPTION_TIERS (in .env) is not valid JSON: Expecting value"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10:100,ten:50", "'ten:50' is not credits:stars"),
        ("10:100,0:5", "'0:5': credits 1-1000000"),
        ("10:100,50:450,10:90", "'10:90' and '10:100' have the same number of credits"),
    ],
)
def test_credit_package_problems_name_the_entry(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("CREDIT_PACKAGES", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("Configuration error: CREDIT_PACKAGES is invalid: ")
    assert expected in str(caught.value)
