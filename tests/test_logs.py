from __future__ import annotations

import logging

import pytest

from lumigram.logs import SecretFilter
from tests.conftest import VALID_TOKEN


def test_token_masked_in_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.secrets")
    logger.addFilter(SecretFilter([VALID_TOKEN]))
    try:
        with caplog.at_level(logging.INFO, logger="test.secrets"):
            logger.info("calling https://api.telegram.org/bot%s/getMe", VALID_TOKEN)
            try:
                raise RuntimeError(f"boom with {VALID_TOKEN}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert VALID_TOKEN not in text
    assert "bot***/getMe" in text
    assert "boom with ***" in text


def test_unknown_token_shapes_are_masked_too() -> None:
    other = "987654321:ZZZhBOweik6ad6PsVMRxjeQKj3oXUbuPvXs"
    assert other not in SecretFilter().mask(f"url /bot{other}/sendMessage")
