from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.domain.invoices import (
    MAX_PAYLOAD_BYTES,
    InvoiceClaim,
    PayloadError,
    Product,
    decode_payload,
    derive_secret,
    encode_payload,
)

SECRET = derive_secret("123456789:AAEhBOweik6ad6PsVMRxjeQKj3oXUbuPvXs")
refs = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=24)


@given(st.sampled_from(Product), refs, st.integers(1, 2**63 - 1), st.integers(0, 2**40))
def test_round_trip_and_size(product: Product, ref: str, user_id: int, issued: int) -> None:
    claim = InvoiceClaim(product, ref, user_id, issued)
    payload = encode_payload(claim, SECRET)
    assert 1 <= len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode_payload(payload, SECRET) == claim


@given(st.text(max_size=128))
def test_anything_else_is_refused(payload: str) -> None:
    with pytest.raises(PayloadError):
        decode_payload(payload, SECRET)


def test_tampering_and_other_keys_are_refused() -> None:
    payload = encode_payload(InvoiceClaim(Product.PACKAGE, "p10", 42, 1_700_000_000), SECRET)
    forged = payload.replace("|42|", "|43|")
    with pytest.raises(PayloadError, match="signature"):
        decode_payload(forged, SECRET)
    with pytest.raises(PayloadError, match="signature"):
        decode_payload(payload, derive_secret("987654321:other"))
