"""Signed download links (``services.file_links``) and ``GET /files/{key}`` over real HTTP.

The real application runs with the API role only, its storage a local folder; the test
makes the ``FileLinks`` and puts it where the route looks (``infra.file_links``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lumigram.config import load_settings
from lumigram.container import Infrastructure
from lumigram.http.routes.files import content_type, download_name, file_links
from lumigram.runtime import BotApplication, Role
from lumigram.services.file_links import FileLinks, derive_link_secret
from tests.conftest import VALID_TOKEN

SECRET = b"file-links-secret-for-tests"
VIDEO_KEY = "results/42/0.mp4"
VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4096  # 1 MiB and a bit


class LinkApp:
    def __init__(self, app: BotApplication, client: httpx.AsyncClient, links: FileLinks) -> None:
        self.app = app
        self.client = client
        self.links = links

    async def link(self, key: str = VIDEO_KEY, expires_in: int = 3600) -> str:
        made = await self.links.link(key, expires_in)
        assert made is not None
        url, expires_at = made
        assert datetime.now(UTC) < expires_at <= datetime.now(UTC) + timedelta(seconds=3601)
        return url


@pytest.fixture
async def link_app(database_url: str, tmp_path: Path) -> AsyncIterator[LinkApp]:
    config = load_settings(
        bot_token=VALID_TOKEN,
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=0,
        storage_dir=tmp_path / "files",
    )
    app = BotApplication(config, roles=frozenset({Role.API}))
    server = await app.serve_http()
    await app.prepare()
    links = FileLinks(app.infra.storage, SECRET, server.url)
    setattr(app.infra, "file_links", links)  # noqa: B010 (the composition root's, later)
    await app.infra.storage.put(VIDEO_KEY, VIDEO, "video/mp4")
    client = httpx.AsyncClient(timeout=10)
    try:
        yield LinkApp(app, client, links)
    finally:
        await client.aclose()
        await app.stop()
        await app.close()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


def assert_problem(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == status


# --- over HTTP ------------------------------------------------------------------------------


async def test_a_link_downloads_the_file(link_app: LinkApp) -> None:
    url = await link_app.link()
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == link_app.links.public_base_url
    assert parts.path == f"/files/{VIDEO_KEY}"
    assert set(parse_qs(parts.query)) == {"expires", "sig"}
    assert "=" not in parse_qs(parts.query)["sig"][0]  # urlsafe base64, no padding

    answer = await link_app.client.get(url)
    assert answer.status_code == 200
    assert answer.content == VIDEO
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["content-disposition"] == 'attachment; filename="lumigram-42-0.mp4"'
    assert answer.headers["content-length"] == str(len(VIDEO))

    # Streamed from the file: a download can resume with a byte range.
    part = await link_app.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == VIDEO[100:200]
    head = await link_app.client.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(VIDEO))


async def test_bad_and_expired_signatures_are_403(link_app: LinkApp) -> None:
    url = await link_app.link()
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    await link_app.app.infra.storage.put("results/43/0.mp4", b"another", "video/mp4")
    other = url.replace("/results/42/", "/results/43/")  # the signature of another key
    tampered = with_query(url, sig=("B" if sig[0] == "A" else "A") + sig[1:])
    later = with_query(url, expires=str(int(expires) + 3600))  # a longer life, same sig
    no_sig = url.split("&sig=")[0]
    no_query = url.split("?")[0]
    junk = with_query(url, expires="soon")
    for refused in (other, tampered, later, no_sig, no_query, junk):
        assert_problem(await link_app.client.get(refused), 403)

    past = int(time.time()) - 1
    expired = with_query(
        url, expires=str(past), sig=link_app.links.signature(VIDEO_KEY, past)
    )  # signed by us, but over
    assert_problem(await link_app.client.get(expired), 403)
    assert (await link_app.client.get(url)).status_code == 200


async def test_missing_files_and_other_keys_are_404(link_app: LinkApp) -> None:
    gone = await link_app.link("results/44/0.mp4")  # never stored
    assert_problem(await link_app.client.get(gone), 404)

    stored = await link_app.link()
    await link_app.app.infra.storage.delete(VIDEO_KEY)
    assert_problem(await link_app.client.get(stored), 404)

    # Keys outside results/, signed by us all the same: not served.
    await link_app.app.infra.storage.put("refs/1/0.png", b"a reference", "image/png")
    base = link_app.links.public_base_url
    for key in ("refs/1/0.png", "results", "results/"):
        expires = int(time.time()) + 60
        sig = link_app.links.signature(key, expires)
        url = f"{base}/files/{key}?expires={expires}&sig={sig}"
        assert_problem(await link_app.client.get(url), 404)
    with pytest.raises(ValueError, match="result files"):
        await link_app.links.link("refs/1/0.png", 60)
    escape = f"{base}/files/results/%2E%2E/refs/1/0.png?expires=1&sig=x"
    assert (await link_app.client.get(escape)).status_code == 404


async def test_the_route_finds_the_links_on_the_host(link_app: LinkApp) -> None:
    assert file_links(link_app.app) is link_app.links
    # The composition root's own links (what the bot signs with): the secret derived
    # from the bot token, under PUBLIC_BASE_URL.
    made = Infrastructure.file_links.func(link_app.app.infra)
    setattr(link_app.app.infra, "file_links", made)  # noqa: B010
    assert file_links(link_app.app) is made
    expected = derive_link_secret(VALID_TOKEN)
    assert made.signature(VIDEO_KEY, 1) == FileLinks(
        link_app.app.infra.storage, expected, None
    ).signature(VIDEO_KEY, 1)
    assert made.public_base_url is None  # no PUBLIC_BASE_URL in these settings
    # A link of another secret is refused by the route.
    url = await link_app.link()
    assert_problem(await link_app.client.get(url), 403)


# --- the parts -------------------------------------------------------------------------------


class PresignedStorage:
    """A FileStorage with URLs of its own, as S3's presigned ones."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        return key

    async def get(self, key: str) -> bytes:
        raise FileNotFoundError(key)

    async def exists(self, key: str) -> bool:
        return True

    async def delete(self, key: str) -> None:
        return None

    async def public_url(self, key: str, expires_in: int) -> str | None:
        self.asked.append((key, expires_in))
        return f"https://bucket.example/{key}?X-Amz-Expires={expires_in}"


class LocalLikeStorage(PresignedStorage):
    async def public_url(self, key: str, expires_in: int) -> str | None:
        return None


async def test_a_store_with_urls_gives_its_own() -> None:
    now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    storage = PresignedStorage()
    links = FileLinks(storage, SECRET, "https://bot.example.com", clock=lambda: now)
    assert await links.link(VIDEO_KEY, 600) == (
        f"https://bucket.example/{VIDEO_KEY}?X-Amz-Expires=600",
        now + timedelta(seconds=600),
    )
    assert storage.asked == [(VIDEO_KEY, 600)]


async def test_links_of_a_local_store() -> None:
    now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    links = FileLinks(LocalLikeStorage(), SECRET, "https://bot.example.com/", clock=lambda: now)
    made = await links.link(VIDEO_KEY, 600)
    assert made is not None
    url, expires_at = made
    unix = int(now.timestamp()) + 600
    assert expires_at == now + timedelta(seconds=600)
    assert url == (
        f"https://bot.example.com/files/{VIDEO_KEY}?expires={unix}"
        f"&sig={links.signature(VIDEO_KEY, unix)}"
    )
    sig = links.signature(VIDEO_KEY, unix)
    assert links.verify(VIDEO_KEY, unix, sig)
    assert links.verify(VIDEO_KEY, str(unix), sig, now + timedelta(seconds=599))
    assert not links.verify(VIDEO_KEY, unix, sig, now + timedelta(seconds=600))  # expired
    assert not links.verify(VIDEO_KEY, unix + 1, sig)
    assert not links.verify("results/42/1.mp4", unix, sig)
    assert not links.verify(VIDEO_KEY, "x", sig)
    assert not links.verify(VIDEO_KEY, unix, "")
    assert not links.verify(VIDEO_KEY, unix, "é" * 43)
    other = FileLinks(LocalLikeStorage(), b"another secret", "https://bot.example.com")
    assert not other.verify(VIDEO_KEY, unix, sig, now)
    # Without PUBLIC_BASE_URL a local file has no link.
    assert await FileLinks(LocalLikeStorage(), SECRET, None).link(VIDEO_KEY, 600) is None


def test_content_types_and_names() -> None:
    cases: dict[str, Any] = {
        "results/1/0.mp4": ("video/mp4", "lumigram-1-0.mp4"),
        "results/1/0.MP4": ("video/mp4", "lumigram-1-0.MP4"),
        "results/1/0.png": ("image/png", "lumigram-1-0.png"),
        "results/1/0.bin": ("application/octet-stream", "lumigram-1-0.bin"),
        "results/1/noext": ("application/octet-stream", "lumigram-1-noext"),
    }
    for key, (mime, name) in cases.items():
        assert content_type(key) == mime
        assert download_name(key) == name
