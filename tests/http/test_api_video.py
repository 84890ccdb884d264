"""A video job through the HTTP API: the real application, KIE's fake over real HTTP.

The application runs with only ``KIE_API_KEY`` set (pointed at FakeKie by base URL);
a video is paid in credits (free images do not cover it), the photo of an
image-to-video model comes as an upload, and the finished MP4 downloads from the API.
"""

from __future__ import annotations

from lumigram.fakes.kie import FakeKie
from lumigram.video import probe_video
from tests.e2e.test_video import KEY, VIDEO, grant, photo
from tests.e2e.test_video import kie as kie  # the fixture: a FakeKie serving VIDEO
from tests.http.conftest import HttpRunner
from tests.http.test_api import FAST, assert_problem, auth, new_key, wait_for_status


async def test_an_api_client_makes_a_video_from_a_photo(runner: HttpRunner, kie: FakeKie) -> None:
    client = await runner.start(
        **FAST,
        kie_api_key=KEY,
        kie_base_url=kie.base_url,
        kie_upload_base_url=kie.base_url,
        free_trial_images=3,
        job_retry_delay=0.1,
    )
    key = await new_key(runner, 9301)
    listed = (await client.get("/v1/models", headers=auth(key))).json()["models"]
    models = {m["id"]: m for m in listed}
    kling = models["kling-2.1"]
    assert kling["available"] is True
    assert kling["price_credits"] == 25

    request = {"model": "kling-2.1", "prompt": "the cat turns its head"}
    # No photo: an image-to-video model says what it needs, and nothing is held.
    missing = await client.post("/v1/generations", headers=auth(key), json=request)
    assert assert_problem(missing, 422)["reason"] == "missing"
    # Three free images, but a video costs credits.
    unpaid = await client.post(
        "/v1/generations",
        headers=auth(key),
        data=request,
        files=[("references", ("cat.png", photo(), "image/png"))],
    )
    assert assert_problem(unpaid, 402)["credits_needed"] == 25
    assert kie.tasks == {}

    assert runner.app is not None
    await grant(runner.app, 9301, 30)
    created = await client.post(
        "/v1/generations",
        headers=auth(key),
        data=request,
        files=[("references", ("cat.png", photo(), "image/png"))],
    )
    assert created.status_code == 202, created.text
    done = await wait_for_status(client, key, created.json()["id"], timeout=30)
    [file] = done["files"]
    assert file["mime_type"] == "video/mp4"
    video = await client.get(file["url"], headers=auth(key))
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content == VIDEO
    assert probe_video(video.content).width == 96

    [task] = kie.tasks.values()
    assert task.body["model"] == "kling/v2-1-standard"
    [upload] = kie.uploads.values()
    assert upload.data == photo()  # the user's own photo, by KIE's upload URL
    account = (await client.get("/v1/me", headers=auth(key))).json()
    assert account["credits"] == 5
    assert account["free_images_left"] == 3
