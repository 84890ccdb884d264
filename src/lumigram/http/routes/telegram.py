"""``POST /telegram/webhook``: Telegram's updates in webhook mode."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated

from aiogram.types import Update
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from lumigram.http.deps import Feeder, Host

log = logging.getLogger(__name__)
router = APIRouter(tags=["telegram"])
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


@router.post("/telegram/webhook")
async def telegram_webhook(
    request: Request,
    host: Host,
    feeder: Feeder,
    secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
) -> JSONResponse:
    expected = host.settings.webhook_secret
    if (
        expected is None
        or secret is None
        or not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode())
    ):
        log.warning("webhook: a request with a wrong or missing secret token was refused")
        return JSONResponse({"ok": False, "detail": "wrong secret token"}, status_code=401)
    try:
        payload = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"ok": False, "detail": "the body is not JSON"}, status_code=400)
    try:
        update = Update.model_validate(payload, context={"bot": host.bot})
    except ValidationError as error:
        # Delivering it again would not help: skipped, as polling skips it.
        log.warning("webhook: skipped an update that cannot be parsed (%s)", error.error_count())
        return JSONResponse({"ok": True})
    if not await feeder.feed(update):
        return JSONResponse({"ok": False, "detail": "handling failed"}, status_code=500)
    return JSONResponse({"ok": True})
