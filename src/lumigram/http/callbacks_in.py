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

KIE.ai (``common-api/webhook-verification``) signs only when the account has a
``webhookHmacKey``: ``X-Webhook-Timestamp`` (unix seconds) and ``X-Webhook-Signature``,
base64 of HMAC-SHA256 of ``{taskId}.{timestamp}`` (the body itself is not signed; each
API family puts the task id in its own place, ``providers.kie.callback_task_id``). With
the key configured, an unsigned callback is refused; without it a callback is taken only
as a hint to poll the task (the record endpoint is the authority either way).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from lumigram.domain.generation import ProviderError
from lumigram.providers.kie import callback_task_id, verify_kie_signature

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 5 * 60  # Standard Webhooks' and Replicate's replay window
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
REFETCH_AFTER_SECONDS = 60.0  # a signature that does not match fetches the secret again
KIE_TIMESTAMP_HEADER = "x-webhook-timestamp"
KIE_SIGNATURE_HEADER = "x-webhook-signature"
REPLAY_CAPACITY = 10_000  # signed KIE callbacks remembered (for TOLERANCE_SECONDS each)


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


class KieVerifier:
    """KIE.ai's callbacks: the task id from the body, then (with the account's
    ``webhookHmacKey``) the signature headers over it.

    ``hmac_key`` None (or empty): KIE sends no signatures, so a callback is taken only as
    a hint. Waking makes the job poll KIE, the authority, so a forged one costs a poll.

    A signed callback seen before, inside the five-minute window, is answered but wakes
    nothing (returns None). The callbacks seen are kept in memory, per process, for the
    window, at most ``replay_capacity`` of them (the oldest make room); they are keyed by
    task id and timestamp, which decide the only valid signature. A replay that gets past
    this (another process, a full memory) does no harm either: a job that has finished
    is not woken, and one that has not only polls once more.
    """

    def __init__(
        self,
        hmac_key: bytes | str | None,
        *,
        clock: Callable[[], float] = time.time,
        tolerance: float = TOLERANCE_SECONDS,
        replay_capacity: int = REPLAY_CAPACITY,
    ) -> None:
        if isinstance(hmac_key, str):
            hmac_key = hmac_key.encode()
        self._key = hmac_key or None
        self._clock = clock
        self._tolerance = tolerance
        self._capacity = max(1, replay_capacity)
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # -> forgotten at
        if self._key is None:
            log.info(
                "KIE callbacks are not signed (no KIE_WEBHOOK_HMAC_KEY): each one is taken "
                "only as a hint to poll its task"
            )

    @property
    def signed(self) -> bool:
        """Whether callbacks must carry KIE's signature (a key is configured)."""
        return self._key is not None

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self._key is None:
            task_id = _kie_task_id(body)
            if task_id is None:
                log.warning("callback: an unsigned KIE callback without a task id")
            return task_id
        timestamp = _header(headers, KIE_TIMESTAMP_HEADER)
        signature = _header(headers, KIE_SIGNATURE_HEADER)
        if not (timestamp and signature):
            raise CallbackRejectedError("an X-Webhook-Timestamp or -Signature header is missing")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise CallbackRejectedError("X-Webhook-Timestamp is not unix seconds")
        now = self._clock()
        sent_at = int(timestamp)
        if abs(now - sent_at) > self._tolerance:
            raise CallbackRejectedError("X-Webhook-Timestamp is more than five minutes off")
        task_id = _kie_task_id(body)
        if task_id is None:  # the task id is what is signed
            raise CallbackRejectedError("the callback names no task to check the signature of")
        if not verify_kie_signature(
            self._key, task_id, timestamp, signature, now, max_age=self._tolerance
        ):
            raise CallbackRejectedError("the signature does not match")
        if self._replayed(task_id, timestamp, now, forget_at=sent_at + self._tolerance):
            log.info("callback: KIE callback for %s at %s seen before: ignored", task_id, sent_at)
            return None
        return task_id

    def _replayed(self, task_id: str, timestamp: str, now: float, *, forget_at: float) -> bool:
        """Whether this (task, timestamp) was seen; remembers it if not."""
        seen = self._seen
        while seen:  # the oldest first, up to one still in its window
            oldest, forgotten_at = next(iter(seen.items()))
            if forgotten_at >= now:
                break
            del seen[oldest]
        entry = (task_id, timestamp)
        expires = seen.get(entry)
        if expires is not None and expires >= now:
            return True
        seen[entry] = forget_at
        seen.move_to_end(entry)
        while len(seen) > self._capacity:
            seen.popitem(last=False)
        return False


def callback_verifiers(providers: Mapping[str, Any]) -> dict[str, CallbackVerifier]:
    """A verifier for each configured provider that has webhooks, by provider name."""
    verifiers: dict[str, CallbackVerifier] = {}
    for name, provider in providers.items():
        if name == "replicate" and callable(getattr(provider, "webhook_secret", None)):
            verifiers[name] = ReplicateVerifier(provider)
        elif name == "kie" and hasattr(provider, "webhook_hmac_key"):
            verifiers[name] = KieVerifier(provider.webhook_hmac_key)
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
    """``name`` (lower case) from ``headers``: Starlette's are case-insensitive, a plain
    mapping is searched."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if isinstance(value, str) else ""


def _kie_task_id(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return callback_task_id(parsed)


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
