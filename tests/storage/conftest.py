"""A real S3-compatible server (moto, in a thread) for the whole session, with a bucket."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from lumigram.storage.s3 import S3Storage
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, s3_server

BUCKET = "lumigram-tests"
_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.create_bucket(BUCKET)
        yield server


def make_storage(server: S3Server, prefix: str = "", **options: object) -> S3Storage:
    return S3Storage(
        BUCKET,
        prefix,
        endpoint_url=server.url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def storage(s3: S3Server) -> AsyncIterator[S3Storage]:
    """An S3Storage under a prefix of its own (tests share the bucket)."""
    store = make_storage(s3, f"t{next(_prefixes)}")
    await store.start()
    yield store
    await store.aclose()
