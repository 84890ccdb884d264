"""Invoice payloads that cannot be forged.

Telegram gives the payload back in the pre-checkout query and in the
successful payment. It names what is being bought and by whom, and carries an
HMAC so a payload we did not issue (or one altered by a client) is refused.
It fits Telegram's 1–128 byte limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

VERSION = "L1"
MAX_PAYLOAD_BYTES = 128
SIGNATURE_CHARS = 22  # 132 bits of a base64url HMAC-SHA256


class Product(StrEnum):
    SINGLE = "s"  # one generation; ref = job id
    PACKAGE = "p"  # a credit package; ref = package id
    SUBSCRIPTION = "u"  # a subscription tier; ref = tier id


@dataclass(frozen=True, slots=True)
class InvoiceClaim:
    product: Product
    ref: str
    user_id: int
    issued_at: int  # unix seconds


class PayloadError(ValueError):
    """Not a payload we issued, or tampered with."""


def derive_secret(bot_token: str) -> bytes:
    """A signing key derived from the bot token, so no extra setting is needed."""
    return hashlib.sha256(f"lumigram-invoice:{bot_token}".encode()).digest()


def _sign(body: str, secret: bytes) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_CHARS]


def encode_payload(claim: InvoiceClaim, secret: bytes) -> str:
    if "|" in claim.ref or not claim.ref:
        raise ValueError("bad reference")
    body = f"{VERSION}|{claim.product.value}|{claim.ref}|{claim.user_id}|{claim.issued_at}"
    payload = f"{body}|{_sign(body, secret)}"
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError("payload too long")
    return payload


def decode_payload(payload: str, secret: bytes) -> InvoiceClaim:
    """The claim of a payload we issued; PayloadError for anything else."""
    parts = payload.split("|")
    if len(parts) != 6 or parts[0] != VERSION:
        raise PayloadError("unknown payload format")
    body, signature = "|".join(parts[:5]), parts[5]
    if not hmac.compare_digest(signature, _sign(body, secret)):
        raise PayloadError("bad signature")
    _, product, ref, user_id, issued_at = parts[:5]
    try:
        return InvoiceClaim(Product(product), ref, int(user_id), int(issued_at))
    except ValueError:
        raise PayloadError("malformed payload") from None
