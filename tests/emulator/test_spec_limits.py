"""The limits hard-coded in the emulator say what the Bot API documentation says."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from lumigram.emulator import limits

SHARED_SCHEMA = (
    Path(__file__).resolve().parents[3] / "shared" / "botapi" / "aiogram-butcher-schema.json"
)

pytestmark = pytest.mark.skipif(
    not SHARED_SCHEMA.exists(), reason="shared Bot API schema not available"
)


@cache
def _entities() -> dict[str, dict[str, Any]]:
    schema = json.loads(SHARED_SCHEMA.read_text(encoding="utf-8"))
    return {child["name"]: child for section in schema["items"] for child in section["children"]}


def prose(entity: str, field: str | None = None) -> str:
    item = _entities()[entity]
    if field is None:
        return str(item["description"])
    for annotation in item["annotations"]:
        if annotation["name"] == field:
            return str(annotation["description"])
    raise KeyError(f"{entity}.{field}")


def test_text_length() -> None:
    assert f"1-{limits.TEXT_MAX} characters after entities parsing" in prose("sendMessage", "text")
    assert f"1-{limits.TEXT_MAX} characters after entity parsing" in prose(
        "editMessageText", "text"
    )


@pytest.mark.parametrize(
    ("entity", "field"),
    [
        ("sendPhoto", "caption"),
        ("sendDocument", "caption"),
        ("sendVideo", "caption"),
        ("sendAnimation", "caption"),
        ("editMessageCaption", "caption"),
        ("InputMediaPhoto", "caption"),
        ("copyMessage", "caption"),
    ],
)
def test_caption_length(entity: str, field: str) -> None:
    assert f"0-{limits.CAPTION_MAX} characters after entities parsing" in prose(entity, field)


def test_callback_data_size() -> None:
    text = prose("InlineKeyboardButton", "callback_data")
    assert f"1-{limits.CALLBACK_DATA_MAX_BYTES} bytes" in text


def test_media_group_size() -> None:
    text = prose("sendMediaGroup", "media")
    assert f"must include {limits.MEDIA_GROUP_MIN}-{limits.MEDIA_GROUP_MAX} items" in text


def test_callback_answer_text() -> None:
    assert f"0-{limits.CALLBACK_ANSWER_TEXT_MAX} characters" in prose("answerCallbackQuery", "text")


def test_update_and_transaction_limits() -> None:
    assert f"Values between 1-{limits.UPDATES_LIMIT_MAX} are accepted" in prose(
        "getUpdates", "limit"
    )
    assert f"Values between 1-{limits.TRANSACTIONS_LIMIT_MAX} are accepted" in prose(
        "getStarTransactions", "limit"
    )


def test_webhook_limits() -> None:
    assert f"1-{limits.SECRET_TOKEN_MAX} characters" in prose("setWebhook", "secret_token")
    assert "X-Telegram-Bot-Api-Secret-Token" in prose("setWebhook", "secret_token")
    assert f"1-{limits.WEBHOOK_MAX_CONNECTIONS}" in prose("setWebhook", "max_connections")


def test_command_limits() -> None:
    assert f"At most {limits.COMMANDS_MAX} commands" in prose("setMyCommands", "commands")
    assert f"1-{limits.COMMAND_MAX} characters" in prose("BotCommand", "command")
    assert f"1-{limits.COMMAND_DESCRIPTION_MAX} characters" in prose("BotCommand", "description")


@pytest.mark.parametrize("method", ["sendInvoice", "createInvoiceLink"])
def test_invoice_limits(method: str) -> None:
    assert f"1-{limits.INVOICE_TITLE_MAX} characters" in prose(method, "title")
    assert f"1-{limits.INVOICE_DESCRIPTION_MAX} characters" in prose(method, "description")
    assert f"1-{limits.INVOICE_PAYLOAD_MAX_BYTES} bytes" in prose(method, "payload")
    assert "Pass an empty string for payments in Telegram Stars" in prose(method, "provider_token")
    assert f"'{limits.STARS_CURRENCY}'" in prose(method, "currency")
    assert "exactly one item for payments in Telegram Stars" in prose(method, "prices")
    assert "Not supported for payments in Telegram Stars" in prose(method, "max_tip_amount")


def test_subscription_limits() -> None:
    text = prose("createInvoiceLink", "subscription_period")
    assert f"it must always be {limits.SUBSCRIPTION_PERIOD} (30 days)" in text
    assert f"{limits.SUBSCRIPTION_MAX_PRICE} Telegram Stars" in text
    assert limits.SUBSCRIPTION_PERIOD == 30 * 24 * 3600
    assert "subscription_period" not in {
        a["name"] for a in _entities()["sendInvoice"]["annotations"]
    }


def test_pre_checkout_timeout() -> None:
    text = prose("answerPreCheckoutQuery")
    match = re.search(r"within (\d+) seconds", text)
    assert match is not None
    assert float(match.group(1)) == limits.PRE_CHECKOUT_TIMEOUT


def test_photo_limits() -> None:
    text = prose("sendPhoto", "photo")
    assert f"at most {limits.PHOTO_UPLOAD_MAX // limits.MB} MB" in text
    assert f"must not exceed {limits.PHOTO_MAX_DIMENSIONS_SUM} in total" in text
    assert f"ratio must be at most {limits.PHOTO_MAX_RATIO}" in text


def test_subscription_update_exists() -> None:
    fields = {a["name"]: a["type"] for a in _entities()["Update"]["annotations"]}
    assert fields["subscription"] == "BotSubscriptionUpdated"
    states = prose("BotSubscriptionUpdated", "state")
    for state in ("canceled", "active", "failed"):
        assert f"'{state}'" in states
