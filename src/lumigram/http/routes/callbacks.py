"""``POST /callbacks/{provider}``: a provider says one of its jobs finished.

Checked by the provider's own scheme (``http.callbacks_in``), then the job waiting on
it is woken (``services.callbacks.ProviderCallbacks``) and the answer goes back at
once: the step itself runs in a worker. See docs/http.md, "Provider callbacks".
"""

from __future__ import annotations

import logging
from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lumigram.db.repositories.callbacks import callback_transactions
from lumigram.http.callbacks_in import (
    CallbackRejectedError,
    CallbackUnavailableError,
    CallbackVerifier,
    verifiers_for,
)
from lumigram.http.deps import Host
from lumigram.services.callbacks import ProviderCallbacks

log = logging.getLogger(__name__)
router = APIRouter(tags=["callbacks"])
__all__ = ["router", "verifiers_for"]  # create_app builds app.state.callback_verifiers
MAX_BODY_BYTES = 64 * 1024 * 1024  # a prediction echoes its input, reference images too
PROBLEM = "application/problem+json"


@router.post("/callbacks/{provider}")
async def provider_callback(provider: str, request: Request, host: Host) -> JSONResponse:
    verifiers = cast(
        "dict[str, CallbackVerifier]", getattr(request.app.state, "callback_verifiers", {})
    )
    verifier = verifiers.get(provider)
    if verifier is None:
        return _problem(404, "Not found", "no callbacks are taken for this provider")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _problem(413, "Payload too large", "the callback is too large")
    body = await request.body()
    try:
        provider_job_id = await verifier.verify(request.headers, body)
    except CallbackRejectedError as error:
        log.warning("callback from %s refused: %s", provider, error)
        return _problem(401, "Unauthorized", "the callback's signature does not check out")
    except CallbackUnavailableError as error:
        log.warning("callback from %s cannot be checked now: %s", provider, error)
        return _problem(503, "Service unavailable", "the callback cannot be checked now")
    if provider_job_id is None:
        return JSONResponse({"ok": True, "job": None})
    job_id = await _callbacks(request, host).wake(provider, provider_job_id)
    if job_id is None:
        # Unknown or already finished: 200 all the same, so the provider stops retrying.
        log.info("callback from %s for %s: no job waits on it", provider, provider_job_id)
    return JSONResponse({"ok": True, "job": job_id})


def _callbacks(request: Request, host: Host) -> ProviderCallbacks:
    """One per app: it keeps the background retries of jobs that were busy."""
    state = request.app.state
    callbacks = getattr(state, "provider_callbacks", None)
    if callbacks is None:
        callbacks = ProviderCallbacks(
            callback_transactions(host.sessionmaker), host.infra.dispatcher
        )
        state.provider_callbacks = callbacks
    return cast(ProviderCallbacks, callbacks)


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM,
    )
