"""Checking the callbacks providers send to ``POST /callbacks/{provider}``.

One verifier per provider with webhooks, each with that provider's own scheme. A
verifier answers the provider's job id the callback is about, or raises
``CallbackRejectedError`` (a bad or missing signature, a stale timestamp: 401) or
``CallbackUnavailableError`` (we cannot check it now, e.g. the secret cannot be fetched:
503, so the provider tries again).

Replicate signs the way Standard Webhooks does: ``webhook-signature`` holds one or more
space-separated ``v1,<base64>`` entries, each an HMAC-SHA256 of
``{webhook-id}.{webhook-timestamp}.{body}`` under the base64-decoded part of the
account's secret after ``whsec_``; a timestamp more than five minutes off is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from lumigram.domain.generation import ProviderError

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 5 * 60  # Standard Webhooks' and Replicate's replay window
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
REFETCH_AFTER_SECONDS = 60.0  # a signature that does not match fetches the secret again


class CallbackRejectedError(Exception):
    """The callback is not the provider's (or is too old): 401, nothing is done."""


class CallbackUnavailableError(Exception):
    """The callback cannot be checked now: 503, the provider sends it again."""


class CallbackVerifier(Protocol):
    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The provider job id the callback is about (None: a genuine callback about no
        job of ours to wake); raises CallbackRejectedError or CallbackUnavailableError."""
        ...


class WebhookSecretSource(Protocol):
    """A provider client that knows its webhook signing secret (``ReplicateProvider``)."""

    async def webhook_secret(self, *, refresh: bool = False) -> str: ...


def sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """One ``v1,<base64>`` signature, as Replicate (and the fake) computes it."""
    key = _key(secret)
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_matches(
    secret: str, webhook_id: str, timestamp: str, body: bytes, header: str
) -> bool:
    """Whether any ``v1`` entry of the ``webhook-signature`` header is ours (constant time)."""
    expected = sign(secret, webhook_id, timestamp, body).encode()
    return any(hmac.compare_digest(expected, entry.encode()) for entry in _entries(header))


class ReplicateVerifier:
    """Replicate's webhooks: the signature headers, then the prediction's ``id``."""

    def __init__(
        self,
        source: WebhookSecretSource,
        *,
        clock: Callable[[], float] = time.time,
        tolerance: float = TOLERANCE_SECONDS,
    ) -> None:
        self._source = source
        self._clock = clock
        self._tolerance = tolerance
        self._fetched_at: float | None = None  # monotonic time of the last fetch

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        webhook_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signature = _header(headers, "webhook-signature")
        if not (webhook_id and timestamp and signature):
            raise CallbackRejectedError("a webhook-id, -timestamp or -signature header is missing")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise CallbackRejectedError("webhook-timestamp is not a number") from None
        if abs(self._clock() - sent_at) > self._tolerance:
            raise CallbackRejectedError("webhook-timestamp is more than five minutes off")
        if not signature_matches(await self._secret(), webhook_id, timestamp, body, signature):
            # Perhaps the secret was rotated: fetch it again, at most once a minute.
            fetched_at = self._fetched_at
            if fetched_at is not None and time.monotonic() - fetched_at < REFETCH_AFTER_SECONDS:
                raise CallbackRejectedError("the signature does not match")
            secret = await self._secret(refresh=True)
            if not signature_matches(secret, webhook_id, timestamp, body, signature):
                raise CallbackRejectedError("the signature does not match")
        return _prediction_id(body)

    async def _secret(self, *, refresh: bool = False) -> str:
        try:
            secret = await self._source.webhook_secret(refresh=refresh)
        except ProviderError as error:
            raise CallbackUnavailableError(f"cannot fetch the webhook secret: {error}") from None
        if refresh or self._fetched_at is None:
            self._fetched_at = time.monotonic()
        try:
            _key(secret)
        except ValueError:
            raise CallbackUnavailableError("the webhook secret is not a whsec_ key") from None
        return secret


def callback_verifiers(providers: Mapping[str, Any]) -> dict[str, CallbackVerifier]:
    """A verifier for each configured provider that has webhooks, by provider name."""
    verifiers: dict[str, CallbackVerifier] = {}
    for name, provider in providers.items():
        if name == "replicate" and callable(getattr(provider, "webhook_secret", None)):
            verifiers[name] = ReplicateVerifier(provider)
    return verifiers


def verifiers_for(host: object) -> dict[str, CallbackVerifier]:
    """``callback_verifiers`` of a running application (none for one without providers)."""
    infra = getattr(host, "infra", None)
    return callback_verifiers(getattr(infra, "providers", None) or {})


# --- helpers -------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a whsec_ secret")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("not base64 after whsec_") from None


def _entries(header: str) -> Iterable[str]:
    """The ``v1,`` entries (other versions are skipped, as the scheme says)."""
    return (entry for entry in header.split() if entry.startswith("v1,"))


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    return value.strip() if isinstance(value, str) else ""


def _prediction_id(body: bytes) -> str | None:
    try:
        prediction = json.loads(body)
    except ValueError:
        log.warning("callback: a signed Replicate callback whose body is not JSON")
        return None
    prediction_id = prediction.get("id") if isinstance(prediction, dict) else None
    if not isinstance(prediction_id, str) or not prediction_id:
        log.warning("callback: a signed Replicate callback without a prediction id")
        return None
    return prediction_id
