"""S3Storage against a real S3-compatible server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lumigram.config import load_settings
from lumigram.startup import StartupError
from lumigram.storage import build_storage, check_storage, close_storage
from lumigram.storage.keys import StorageKeyError
from lumigram.storage.local import LocalStorage
from lumigram.storage.s3 import DOWNLOAD_CHUNK, PART_SIZE, S3Storage, parse_storage_url
from tests.conftest import VALID_TOKEN
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.storage.conftest import BUCKET, make_storage

MiB = 1024 * 1024


async def head(s3: S3Server, name: str) -> dict[str, object]:
    answer: dict[str, object] = await asyncio.to_thread(
        s3.client.head_object, Bucket=BUCKET, Key=name
    )
    return answer


async def names(s3: S3Server, prefix: str) -> list[str]:
    answer = await asyncio.to_thread(s3.client.list_objects_v2, Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def payload(size: int) -> bytes:
    """Bytes that differ from part to part (a part uploaded twice would show)."""
    block = os.urandom(64 * 1024)
    return (block * (size // len(block) + 1))[:size]


# --- the FileStorage protocol ----------------------------------------------------------
async def test_put_get_exists_delete_round_trip(storage: S3Storage, s3: S3Server) -> None:
    assert await storage.exists("results/1/1.png") is False
    assert await storage.put("results/1/1.png", b"\x89PNG fake", "image/png") == "results/1/1.png"
    assert await storage.exists("results/1/1.png") is True
    assert await storage.get("results/1/1.png") == b"\x89PNG fake"
    stored = await head(s3, f"{storage.prefix}results/1/1.png")
    assert stored["ContentType"] == "image/png"
    await storage.put("results/1/1.png", b"second", "image/png")  # overwritten
    assert await storage.get("results/1/1.png") == b"second"
    await storage.delete("results/1/1.png")
    assert await storage.exists("results/1/1.png") is False
    await storage.delete("results/1/1.png")  # a missing file: no error, as locally


async def test_missing_key_is_file_not_found(storage: S3Storage) -> None:
    with pytest.raises(FileNotFoundError):
        await storage.get("results/404/1.png")
    with pytest.raises(FileNotFoundError):
        async for _ in storage.get_stream("results/404/1.png"):
            pass


async def test_keys_live_under_the_prefix_and_prefixes_are_apart(s3: S3Server) -> None:
    assert parse_storage_url("s3://bucket") == ("bucket", "")
    assert parse_storage_url("s3://bucket/") == ("bucket", "")
    assert parse_storage_url("s3://bucket/lumigram") == ("bucket", "lumigram/")
    assert parse_storage_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    with pytest.raises(StorageKeyError):
        parse_storage_url("s3://bucket/a/../b")

    one, two, root = (
        make_storage(s3, "prefix-one/"),
        make_storage(s3, "/prefix-two"),
        make_storage(s3),
    )
    try:
        await one.put("results/7/1.png", b"one", "image/png")
        await two.put("results/7/1.png", b"two", "image/png")
        await root.put("prefix-test/x.txt", b"root", "text/plain")
        assert await names(s3, "prefix-one/") == ["prefix-one/results/7/1.png"]
        assert await names(s3, "prefix-two/") == ["prefix-two/results/7/1.png"]
        assert await names(s3, "prefix-test/") == ["prefix-test/x.txt"]
        assert await one.get("results/7/1.png") == b"one"
        assert await two.get("results/7/1.png") == b"two"
        assert await root.get("prefix-one/results/7/1.png") == b"one"
        assert await one.exists("prefix-test/x.txt") is False
    finally:
        for store in (one, two, root):
            await store.aclose()


@pytest.mark.parametrize(
    "key", ["", "../secret", "results/../../etc/passwd", "/absolute", "a b", "a\\b", "x" * 300]
)
async def test_unsafe_keys_are_refused_before_any_request(storage: S3Storage, key: str) -> None:
    for call in (
        storage.put(key, b"x", "image/png"),
        storage.get(key),
        storage.exists(key),
        storage.delete(key),
        storage.presigned_url(key, 60),
        storage.public_url(key, 60),
    ):
        with pytest.raises(StorageKeyError):
            await call
    with pytest.raises(StorageKeyError):
        await LocalStorage(Path("files")).public_url(key, 60)  # the same rule locally


# --- large files ----------------------------------------------------------------------
async def test_put_stream_of_20_mib_is_a_multipart_upload(storage: S3Storage, s3: S3Server) -> None:
    data = payload(20 * MiB)
    await storage.put_stream("results/big/1.png", chunks_of(data, MiB + 7), "image/png")
    stored = await head(s3, f"{storage.prefix}results/big/1.png")
    assert stored["ContentLength"] == 20 * MiB
    assert stored["ContentType"] == "image/png"
    # A multipart object's ETag is "<md5 of the parts' md5s>-<number of parts>".
    assert str(stored["ETag"]).strip('"').endswith("-3")  # 8 + 8 + 4 MiB
    received = bytearray()
    async for chunk in storage.get_stream("results/big/1.png"):
        assert 0 < len(chunk) <= DOWNLOAD_CHUNK
        received += chunk
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    assert await storage.get("results/big/1.png") == data


async def test_small_streams_are_one_put_and_large_puts_go_in_parts(
    storage: S3Storage, s3: S3Server
) -> None:
    small = payload(3 * 100_000)
    await storage.put_stream("small.bin", chunks_of(small, 100_000), "application/octet-stream")
    assert "-" not in str((await head(s3, f"{storage.prefix}small.bin"))["ETag"])
    assert await storage.get("small.bin") == small
    await storage.put_stream("empty.bin", chunks_of(b"", 1), "application/octet-stream")
    assert await storage.get("empty.bin") == b""

    large = payload(PART_SIZE + MiB)  # put(bytes) above the threshold: two parts
    await storage.put("large.bin", large, "application/octet-stream")
    assert str((await head(s3, f"{storage.prefix}large.bin"))["ETag"]).strip('"').endswith("-2")
    assert await storage.get("large.bin") == large


async def test_a_failed_stream_aborts_its_multipart_upload(
    storage: S3Storage, s3: S3Server
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield payload(PART_SIZE + 1)  # one part goes up, then the source fails
        raise ConnectionResetError("the upload's source went away")

    with pytest.raises(ConnectionResetError):
        await storage.put_stream("broken.bin", broken(), "application/octet-stream")
    assert await storage.exists("broken.bin") is False
    uploads = await asyncio.to_thread(
        s3.client.list_multipart_uploads, Bucket=BUCKET, Prefix=storage.prefix
    )
    assert uploads.get("Uploads", []) == []  # no parts left behind (and billed)


# --- presigned URLs -------------------------------------------------------------------
async def test_presigned_urls_download_without_credentials(
    storage: S3Storage, s3: S3Server
) -> None:
    await storage.put("results/5/1.png", b"\x89PNG presigned", "image/png")
    url = await storage.presigned_url("results/5/1.png", 120)
    assert url.startswith(f"{s3.url}/{BUCKET}/{storage.prefix}results/5/1.png?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["120"]
    assert "X-Amz-Signature" in query
    assert SECRET_KEY not in url
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.content == b"\x89PNG presigned"
    assert answer.headers["content-type"] == "image/png"
    public = await storage.public_url("results/5/1.png", 60)
    assert public is not None
    assert parse_qs(urlsplit(public).query)["X-Amz-Expires"] == ["60"]
    assert await LocalStorage(Path("files")).public_url("results/5/1.png", 60) is None


async def test_presigned_urls_name_the_public_endpoint_when_one_is_set(s3: S3Server) -> None:
    """Inside compose Lumigram reaches MinIO as http://minio:9000; API clients outside
    need URLs signed for the address they use (here: localhost instead of 127.0.0.1)."""
    public = s3.url.replace("127.0.0.1", "localhost")
    store = make_storage(s3, "public", public_endpoint_url=public)
    try:
        await store.put("results/6/1.png", b"\x89PNG public", "image/png")
        url = await store.public_url("results/6/1.png", 60)
        assert url is not None
        assert url.startswith(f"{public}/{BUCKET}/public/results/6/1.png?")
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        assert answer.status_code == 200
        assert answer.content == b"\x89PNG public"
        assert await store.get("results/6/1.png") == b"\x89PNG public"  # still the inner one
    finally:
        await store.aclose()


# --- the client's life ------------------------------------------------------------------
async def test_the_client_opens_once_on_first_use_and_again_after_close(s3: S3Server) -> None:
    store = make_storage(s3, "lifecycle")
    try:
        await asyncio.gather(*(store.put(f"f/{i}", b"x", "text/plain") for i in range(5)))
        client = store._client
        assert client is not None
        await store.start()
        assert store._client is client  # one long-lived client
        await store.aclose()
        assert store._client is None
        await store.aclose()  # twice: nothing happens
        assert await store.get("f/3") == b"x"  # reopened on use
    finally:
        await store.aclose()
    assert "secret" not in repr(store).lower()
    assert SECRET_KEY not in repr(store)


# --- the start-up check -----------------------------------------------------------------
async def test_the_check_passes_for_a_bucket_that_is_there(storage: S3Storage) -> None:
    await storage.check()
    await check_storage(storage)
    await check_storage(LocalStorage(Path("files")))  # nothing to check: no error
    await close_storage(LocalStorage(Path("files")))


async def test_the_check_names_a_missing_bucket_in_one_line(s3: S3Server) -> None:
    store = S3Storage(
        "no-such-bucket",
        "x",
        endpoint_url=s3.url,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    try:
        with pytest.raises(StartupError) as caught:
            await store.check()
    finally:
        await store.aclose()
    message = str(caught.value)
    assert message == (
        f"Storage error: S3 storage at {s3.url} bucket no-such-bucket: the bucket does not "
        "exist — check STORAGE_URL, S3_ENDPOINT_URL and the S3 keys"
    )
    assert caught.value.__suppress_context__  # raised "from None": no chained traceback
    assert SECRET_KEY not in message


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_check_names_an_unreachable_endpoint_in_one_line() -> None:
    port = _closed_port()
    store = S3Storage(
        "lumigram",
        endpoint_url=f"http://127.0.0.1:{port}/",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        max_attempts=1,  # the real default retries twice more, over about 2 s
    )
    try:
        with pytest.raises(StartupError) as caught:
            await store.check()
    finally:
        await store.aclose()
    message = str(caught.value)
    assert message == (
        f"Storage error: S3 storage at http://127.0.0.1:{port} bucket lumigram: cannot "
        "connect to the endpoint (Connection refused) — check STORAGE_URL, S3_ENDPOINT_URL "
        "and the S3 keys"
    )
    assert "\n" not in message
    assert SECRET_KEY not in message
    assert caught.value.__suppress_context__


# --- build_storage ----------------------------------------------------------------------
def test_build_storage_picks_the_local_folder_or_s3(tmp_path: Path, s3: S3Server) -> None:
    local = build_storage(load_settings(bot_token=VALID_TOKEN, storage_dir=tmp_path / "files"))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "files").resolve()

    settings = load_settings(
        bot_token=VALID_TOKEN,
        **{
            **s3.settings(BUCKET, "lumigram/prod"),
            "s3_region": "eu-central-1",
            "s3_presign_seconds": 600,
        },
    )
    remote = build_storage(settings)
    assert isinstance(remote, S3Storage)
    assert (remote.bucket, remote.prefix) == (BUCKET, "lumigram/prod/")
    assert remote.endpoint_url == s3.url
    assert remote.region == "eu-central-1"
    assert remote.presign_seconds == 600
    assert remote._client is None  # connected by the start-up check, not here

    aws = build_storage(load_settings(bot_token=VALID_TOKEN, storage_url="s3://my-bucket"))
    assert isinstance(aws, S3Storage)
    assert (aws.bucket, aws.prefix, aws.endpoint_url) == ("my-bucket", "", "")
    assert aws.where == "AWS (us-east-1)"


def test_without_aiobotocore_s3_is_one_line_and_local_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "lumigram.storage.s3", raising=False)
    for name in ("aiobotocore", "aiobotocore.config", "aiobotocore.session"):
        monkeypatch.setitem(sys.modules, name, None)  # "not installed"
    with pytest.raises(StartupError) as caught:
        build_storage(load_settings(bot_token=VALID_TOKEN, storage_url="s3://my-bucket/x"))
    assert str(caught.value) == (
        "STORAGE_URL is s3://my-bucket/x but aiobotocore is not installed: "
        "pip install 'lumigram[scale]'"
    )
    local = build_storage(load_settings(bot_token=VALID_TOKEN, storage_dir=tmp_path))
    assert isinstance(local, LocalStorage)


def test_the_local_default_never_imports_aiobotocore(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from lumigram.config import load_settings\n"
        "from lumigram.storage import build_storage\n"
        f"build_storage(load_settings(bot_token={VALID_TOKEN!r}))\n"
        "assert 'aiobotocore' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=60)
