"""HTTP_*, TELEGRAM_MODE, PUBLIC_BASE_URL and WEBHOOK_* settings: one line per problem."""

from __future__ import annotations

from typing import Any

import pytest

from lumigram.config import ConfigError, load_settings

TOKEN = "123456789:" + "A" * 35


def problem(**settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(bot_token=TOKEN, **settings)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    settings = load_settings(bot_token=TOKEN)
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.telegram_mode == "polling"
    assert settings.public_base_url == ""
    assert settings.webhook_secret is None
    assert settings.webhook_max_connections == 40


def test_webhook_mode() -> None:
    settings = load_settings(
        bot_token=TOKEN,
        telegram_mode="Webhook",
        public_base_url="https://bot.example.com/lumigram/",
        webhook_secret="s3cret_-X",
        webhook_max_connections=100,
    )
    assert settings.telegram_mode == "webhook"
    assert settings.webhook_url == "https://bot.example.com/lumigram/telegram/webhook"
    assert settings.masked()["WEBHOOK_SECRET"] == "s3cr…(9 chars)"
    # http is accepted (a warning at start), for the emulator and local use.
    assert load_settings(
        bot_token=TOKEN,
        telegram_mode="webhook",
        public_base_url="http://127.0.0.1:8080",
        webhook_secret="x",
    ).public_base_url.startswith("http://")


def test_webhook_mode_needs_a_url_and_a_secret() -> None:
    assert problem(telegram_mode="webhook", webhook_secret="x").startswith(
        "Configuration error: PUBLIC_BASE_URL is not set — "
    )
    assert problem(telegram_mode="webhook", public_base_url="https://a.example").startswith(
        "Configuration error: WEBHOOK_SECRET is not set — "
    )


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"telegram_mode": "push"}, "TELEGRAM_MODE"),
        ({"http_port": 70000}, "HTTP_PORT"),
        ({"http_port": -1}, "HTTP_PORT"),
        ({"public_base_url": "bot.example.com"}, "PUBLIC_BASE_URL"),
        ({"webhook_secret": "has space"}, "WEBHOOK_SECRET"),
        ({"webhook_secret": "é"}, "WEBHOOK_SECRET"),
        ({"webhook_secret": "a" * 257}, "WEBHOOK_SECRET"),
        ({"webhook_max_connections": 0}, "WEBHOOK_MAX_CONNECTIONS"),
        ({"webhook_max_connections": 101}, "WEBHOOK_MAX_CONNECTIONS"),
    ],
)
def test_bad_values_are_one_line_naming_the_setting(settings: dict[str, Any], name: str) -> None:
    message = problem(**settings)
    assert message.startswith(f"Configuration error: {name} is invalid")
    assert "a" * 257 not in message
