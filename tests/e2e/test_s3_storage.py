"""STORAGE_URL=s3://…: the real bot (and its API) keeping files in a real S3-compatible
server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from lumigram.container import Services
from lumigram.emulator import TelegramEmulator
from lumigram.startup import StartupError
from lumigram.storage.s3 import S3Storage
from tests.e2e.conftest import BotRunner
from tests.e2e.test_generation import generate
from tests.http.conftest import HttpRunner
from tests.s3_server import SECRET_KEY, S3Server, s3_server

BUCKET = "lumigram-e2e"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
async def api_runner(emulator: TelegramEmulator, database_url: str) -> AsyncIterator[HttpRunner]:
    """The bot with its HTTP server (the API) on a free port."""
    runner = HttpRunner(emulator, database_url)
    yield runner
    await runner.stop()
    emulator.assert_no_errors(allow=runner.allowed_errors)


async def test_results_go_to_the_bucket_and_the_api_redirects_to_them(
    api_runner: HttpRunner, emulator: TelegramEmulator, s3: S3Server
) -> None:
    client = await api_runner.start(**s3.settings(BUCKET, "lumigram"), demo_image_size=128)
    app = api_runner.app
    assert app is not None
    assert isinstance(app.infra.storage, S3Storage)

    user = emulator.user(user_id=3001, first_name="Ann")
    await generate(user, "Custom prompt", "a red fox in the snow")
    await user.press("Generate")
    await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    document = await user.wait_for(lambda m: m.kind == "document", timeout=10)
    delivered = emulator.file_bytes(document.media[0])

    # The result is in the bucket, under the prefix, and it is what the chat got.
    async with app.reader() as session:
        [job] = await Services(session, app.infra).generation.history(user.id)
    assert job.id is not None
    [result] = job.results
    listing = await asyncio.to_thread(
        s3.client.list_objects_v2, Bucket=BUCKET, Prefix="lumigram/results/"
    )
    assert [item["Key"] for item in listing["Contents"]] == [f"lumigram/{result.key}"]
    stored = await asyncio.to_thread(
        s3.client.get_object, Bucket=BUCKET, Key=f"lumigram/{result.key}"
    )
    assert stored["ContentType"] == "image/png"
    assert stored["Body"].read() == delivered

    # The API answers a download with a redirect to a presigned URL of that object.
    async with app.sessionmaker() as session:
        key = await Services(session, app.infra).api_keys.create(user.id)
    auth = {"Authorization": f"Bearer {key.plaintext}"}
    answer = await client.get(f"/v1/generations/{job.id}/files/1", headers=auth)
    assert answer.status_code == 307, answer.text
    assert answer.headers["cache-control"] == "private, no-store"
    location = answer.headers["location"]
    assert location.startswith(f"{s3.url}/{BUCKET}/lumigram/{result.key}?")
    assert "X-Amz-Signature=" in location
    assert f"X-Amz-Expires={app.settings.s3_presign_seconds}" in location
    assert SECRET_KEY not in location
    async with httpx.AsyncClient() as anyone:  # no credentials at all
        download = await anyone.get(location)
    assert download.status_code == 200
    assert download.content == delivered
    # httpx follows it too, and does not carry the API key to the other host.
    followed = await client.get(
        f"/v1/generations/{job.id}/files/1", headers=auth, follow_redirects=True
    )
    assert followed.content == delivered
    assert "authorization" not in followed.request.headers

    # A file the bucket lost is the API's 404, not the store's error page.
    await asyncio.to_thread(s3.client.delete_object, Bucket=BUCKET, Key=f"lumigram/{result.key}")
    gone = await client.get(f"/v1/generations/{job.id}/files/1", headers=auth)
    assert gone.status_code == 404


async def test_a_missing_bucket_stops_the_start_with_one_line(
    runner: BotRunner, s3: S3Server
) -> None:
    with pytest.raises(StartupError) as caught:
        await runner.start(**s3.settings("no-such-bucket", "lumigram"))
    message = str(caught.value)
    assert message.startswith(f"Storage error: S3 storage at {s3.url} bucket no-such-bucket:")
    assert "check STORAGE_URL, S3_ENDPOINT_URL and the S3 keys" in message
    assert "\n" not in message
    assert SECRET_KEY not in message
