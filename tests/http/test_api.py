"""The API under /v1 over real HTTP: the real application (uvicorn on a free port)
against the Telegram emulator, the demo provider, and local HTTP servers that serve
reference images and receive callbacks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from lumigram.container import Services
from lumigram.domain.jobs import Channel
from lumigram.http.callbacks_out import ApiCallbacks
from lumigram.services.api_keys import CreatedKey
from lumigram.services.users import Contact
from tests.http.conftest import HttpRunner

PROBLEM = "application/problem+json"
# Generous rate limits: the tests poll quickly (the rate-limit test sets its own).
FAST = {
    "demo_image_size": 128,
    "api_callback_private_hosts": True,
    "api_rate_limit": 60_000,
    "api_rate_burst": 1_000,
}


def png(width: int = 48, height: int = 32, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


# --- a real local HTTP server: reference images and a callback receiver ---------------
@dataclass
class LocalWeb:
    files: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes, str]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses for the next POSTs
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = web.files.get(
                    self.path, (404, "text/plain", b"not here")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                web.received.append((dict(self.headers.items()), body, self.path))
                status = web.answers.pop(0) if web.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    local = LocalWeb()
    local.start()
    yield local
    local.stop()


# --- helpers ----------------------------------------------------------------------------
async def new_key(runner: HttpRunner, user_id: int, first_name: str = "Ann") -> CreatedKey:
    """A registered user (as the bot registers them) with an API key."""
    app = runner.app
    assert app is not None
    async with app.sessionmaker() as session:
        services = Services(session, app.infra)
        await services.users.register_contact(Contact(user_id, first_name, language_code="en"))
        return await services.api_keys.create(user_id)


def auth(key: CreatedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.plaintext}"}


async def wait_for_status(
    client: httpx.AsyncClient,
    key: CreatedKey,
    job_id: int,
    statuses: tuple[str, ...] = ("succeeded",),
    timeout: float = 20.0,
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            answer = await client.get(f"/v1/generations/{job_id}", headers=auth(key))
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if body["status"] in statuses:
                return body
            assert body["status"] in ("queued", "running"), body
            await asyncio.sleep(0.05)


async def me(client: httpx.AsyncClient, key: CreatedKey) -> dict[str, Any]:
    answer = await client.get("/v1/me", headers=auth(key))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def job_count(runner: HttpRunner, user_id: int) -> int:
    app = runner.app
    assert app is not None
    async with app.sessionmaker() as session:
        return len(await Services(session, app.infra).generation.history(user_id))


# --- the whole flow -------------------------------------------------------------------
async def test_key_post_poll_and_download_a_png(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    key = await new_key(runner, 9001)
    models = await client.get("/v1/models", headers=auth(key))
    assert models.status_code == 200
    demo = next(m for m in models.json()["models"] if m["id"] == "demo")
    assert demo["available"] is True
    assert demo["price_credits"] == 1
    assert demo["capabilities"]["max_reference_images"] == 4
    assert {"custom", "nature", "coloring"} <= {m["slug"] for m in models.json()["modes"]}

    created = await client.post(
        "/v1/generations",
        headers=auth(key),
        json={"model": "demo", "prompt": "a red fox in the snow", "settings": {"seed": 7}},
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/generations/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["model"] == "demo"
    assert job["mode"] == "custom"
    assert job["prompt"] == "a red fox in the snow"
    assert job["settings"]["seed"] == 7
    assert job["settings"]["aspect_ratio"] == "1:1"
    assert "coloring" not in job["settings"]

    done = await wait_for_status(client, key, job["id"])
    assert done["progress"] == 1.0
    assert done["error"] is None
    assert done["queue_position"] is None
    assert done["finished_at"] is not None
    [file] = done["files"]
    assert file["index"] == 1
    assert file["mime_type"] == "image/png"
    assert file["url"] == f"/v1/generations/{job['id']}/files/1"  # no PUBLIC_BASE_URL
    image = await client.get(file["url"], headers=auth(key))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.headers["content-disposition"] == (
        f'inline; filename="lumigram-{job["id"]}-1.png"'
    )
    assert Image.open(io.BytesIO(image.content)).size == (file["width"], file["height"])

    account = await me(client, key)
    assert account["user_id"] == 9001
    assert account["language"] == "en"
    assert account["free_images_left"] == 2  # one of the three free images was used
    assert account["credits"] == 0
    assert account["stars"] == 0
    assert account["subscription"]["active"] is False
    assert account["subscription"]["perks"]["max_active_jobs"] == 1
    subscription = await client.get("/v1/subscription", headers=auth(key))
    assert subscription.json() == account["subscription"]

    # The seed's paths are the same functions.
    status = await client.get(f"/status/{job['id']}", headers=auth(key))
    assert status.status_code == 200
    assert status.json() == done
    alias = await client.get("/subscription", headers=auth(key))
    assert alias.json() == account["subscription"]
    generated = await client.post("/generate", headers=auth(key), json={"prompt": "a jpeg cat"})
    assert generated.status_code == 202, generated.text
    finished = await wait_for_status(client, key, generated.json()["id"])
    assert finished["model"] == "demo"


async def test_docs_and_openapi_answer(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/v1/models",
        "/v1/generations",
        "/v1/generations/{job_id}",
        "/v1/generations/{job_id}/files/{n}",
        "/v1/generations/{job_id}/cancel",
        "/v1/me",
        "/v1/subscription",
    ):
        assert path in paths, path
    assert paths["/generate"]["post"]["deprecated"] is True
    assert paths["/status/{job_id}"]["get"]["tags"] == ["seed aliases"]
    body = paths["/v1/generations"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "API key" in schema["components"]["securitySchemes"]


# --- authentication and isolation --------------------------------------------------------
async def test_missing_malformed_unknown_and_revoked_keys_get_401(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    key = await new_key(runner, 9002)
    unknown = "lg_" + "A" * 40
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer lg_short"},
        {"Authorization": f"Bearer {unknown}"},
    ):
        for method, path in (("GET", "/v1/me"), ("POST", "/v1/generations"), ("GET", "/status/1")):
            answer = await client.request(method, path, headers=headers, json={"prompt": "x"})
            body = assert_problem(answer, 401)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert "key" in body["detail"].lower()
    assert (await client.get("/v1/me", headers=auth(key))).status_code == 200

    app = runner.app
    assert app is not None
    assert key.key.id is not None
    async with app.sessionmaker() as session:
        assert await Services(session, app.infra).api_keys.revoke(9002, key.key.id)
    revoked = await client.get("/v1/me", headers=auth(key))
    assert_problem(revoked, 401)
    assert "revoked" in revoked.json()["detail"]


async def test_a_user_sees_only_their_own_jobs_and_files(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    alice, bob = await new_key(runner, 9003, "Alice"), await new_key(runner, 9004, "Bob")
    created = await client.post("/v1/generations", headers=auth(alice), json={"prompt": "a cat"})
    job_id = created.json()["id"]
    done = await wait_for_status(client, alice, job_id)
    file_url = done["files"][0]["url"]
    for method, path in (
        ("GET", f"/v1/generations/{job_id}"),
        ("GET", file_url),
        ("POST", f"/v1/generations/{job_id}/cancel"),
        ("GET", f"/status/{job_id}"),
    ):
        body = assert_problem(await client.request(method, path, headers=auth(bob)), 404)
        assert "no such" in body["detail"]
    assert (await client.get(file_url, headers=auth(alice))).status_code == 200
    assert_problem(await client.get(f"/v1/generations/{job_id}/files/2", headers=auth(alice)), 404)
    assert_problem(await client.get("/v1/generations/999999", headers=auth(alice)), 404)
    # A finished job cannot be cancelled.
    finished = await client.post(f"/v1/generations/{job_id}/cancel", headers=auth(alice))
    assert assert_problem(finished, 409)["generation_status"] == "succeeded"


# --- idempotency, rate limits --------------------------------------------------------------
async def test_an_idempotency_key_returns_the_same_job(runner: HttpRunner) -> None:
    client = await runner.start(public_base_url="http://api.example.test", **FAST)
    key = await new_key(runner, 9005)
    request = {"prompt": "a quiet harbour [demo:slow=1]", "settings": {"num_outputs": 2}}
    headers = {**auth(key), "Idempotency-Key": "order-42"}
    first = await client.post("/v1/generations", headers=headers, json=request)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    assert first.headers["location"] == f"http://api.example.test/v1/generations/{job_id}"
    again = await client.post("/v1/generations", headers=headers, json=request)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job_id
    assert again.headers["location"] == first.headers["location"]
    assert await job_count(runner, 9005) == 1
    assert (await me(client, key))["free_images_left"] == 1  # one hold of two images

    other = await client.post(
        "/v1/generations", headers=headers, json={**request, "prompt": "something else"}
    )
    body = assert_problem(other, 422)
    assert "Idempotency-Key" in body["detail"]
    assert await job_count(runner, 9005) == 1

    done = await wait_for_status(client, key, job_id)
    assert [f["url"] for f in done["files"]] == [
        f"http://api.example.test/v1/generations/{job_id}/files/{n}" for n in (1, 2)
    ]
    replay = await client.post("/v1/generations", headers=headers, json=request)
    assert replay.status_code == 200
    assert replay.json() == done
    assert (await me(client, key))["free_images_left"] == 1


async def test_the_rate_limit_answers_429_with_retry_after(runner: HttpRunner) -> None:
    client = await runner.start(**{**FAST, "api_rate_limit": 1, "api_rate_burst": 2})
    key, other = await new_key(runner, 9006), await new_key(runner, 9007)
    assert (await client.get("/v1/me", headers=auth(key))).status_code == 200
    assert (await client.get("/v1/models", headers=auth(key))).status_code == 200
    limited = await client.get("/v1/me", headers=auth(key))
    body = assert_problem(limited, 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert body["retry_after"] == int(limited.headers["retry-after"])
    assert (await client.get("/v1/me", headers=auth(other))).status_code == 200  # per key


# --- money and the active-job rule ---------------------------------------------------------
async def test_payment_required_once_the_free_images_are_used(runner: HttpRunner) -> None:
    client = await runner.start(free_trial_images=1, **FAST)
    key = await new_key(runner, 9008)
    first = await client.post("/v1/generations", headers=auth(key), json={"prompt": "a boat"})
    await wait_for_status(client, key, first.json()["id"])
    assert (await me(client, key))["free_images_left"] == 0
    second = await client.post("/v1/generations", headers=auth(key), json={"prompt": "a boat"})
    body = assert_problem(second, 402)
    assert body["credits_needed"] == 1
    assert body["credits"] == 0
    assert "top up" in body["detail"].lower()
    assert "bot" in body["detail"]
    assert await job_count(runner, 9008) == 1  # nothing was created


async def test_the_active_job_limit_is_409_and_cancel_frees_it(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    key = await new_key(runner, 9009)
    slow = await client.post(
        "/v1/generations", headers=auth(key), json={"prompt": "slow boats [demo:slow=30]"}
    )
    slow_id = slow.json()["id"]
    await wait_for_status(client, key, slow_id, ("running",))
    assert (await me(client, key))["free_images_left"] == 2
    second = await client.post("/v1/generations", headers=auth(key), json={"prompt": "more"})
    body = assert_problem(second, 409)
    assert body["active_job_id"] == slow_id
    assert f"/v1/generations/{slow_id}/cancel" in body["detail"]

    cancelled = await client.post(f"/v1/generations/{slow_id}/cancel", headers=auth(key))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["files"] == []
    assert (await me(client, key))["free_images_left"] == 3  # the hold went back
    assert_problem(await client.post(f"/v1/generations/{slow_id}/cancel", headers=auth(key)), 409)
    third = await client.post("/v1/generations", headers=auth(key), json={"prompt": "more"})
    assert third.status_code == 202, third.text
    await wait_for_status(client, key, third.json()["id"])


@pytest.fixture
def premium_demo(tmp_path: Path) -> Path:
    """A catalog override that makes the demo model premium."""
    path = tmp_path / "catalog.toml"
    path.write_text('[[model]]\nid = "demo"\npremium = true\n')
    return path


async def test_premium_models_need_a_subscription(runner: HttpRunner, premium_demo: Path) -> None:
    client = await runner.start(catalog_file=str(premium_demo), **FAST)
    key = await new_key(runner, 9010)
    models = (await client.get("/v1/models", headers=auth(key))).json()["models"]
    assert next(m for m in models if m["id"] == "demo")["available"] is False
    answer = await client.post("/v1/generations", headers=auth(key), json={"prompt": "a cat"})
    body = assert_problem(answer, 403)
    assert body["perk"] == "premium"
    too_many = {"model": "demo", "prompt": "a cat", "settings": {"num_outputs": 4}}
    assert_problem(await client.post("/v1/generations", headers=auth(key), json=too_many), 403)


# --- references ---------------------------------------------------------------------------
async def test_reference_images_by_upload_and_by_url(runner: HttpRunner, web: LocalWeb) -> None:
    client = await runner.start(**FAST)
    key = await new_key(runner, 9011)
    uploaded = await client.post(
        "/v1/generations",
        headers=auth(key),
        data={"prompt": "a lighthouse at dusk", "settings": json.dumps({"aspect_ratio": "16:9"})},
        files=[
            ("references", ("a.png", png(), "image/png")),
            ("references", ("b.png", png(colour=(0, 200, 0)), "image/png")),
        ],
    )
    assert uploaded.status_code == 202, uploaded.text
    assert uploaded.json()["references"] == 2
    assert uploaded.json()["settings"]["aspect_ratio"] == "16:9"
    done = await wait_for_status(client, key, uploaded.json()["id"])
    width, height = done["files"][0]["width"], done["files"][0]["height"]
    assert abs(width / height - 16 / 9) < 0.02

    web.files["/ref.png"] = (200, "image/png", png(colour=(0, 0, 250)))
    web.files["/moved"] = (302, "text/plain", b"")
    web.files["/text"] = (200, "text/plain", b"just words, not an image")
    by_url = await client.post(
        "/v1/generations",
        headers=auth(key),
        json={"prompt": "the same, in blue", "reference_urls": [f"{web.url}/ref.png"]},
    )
    assert by_url.status_code == 202, by_url.text
    assert by_url.json()["references"] == 1
    await wait_for_status(client, key, by_url.json()["id"])

    async def refused(request: dict[str, Any], reason: str) -> dict[str, Any]:
        answer = await client.post("/v1/generations", headers=auth(key), json=request)
        body = assert_problem(answer, 422)
        assert body["reason"] == reason, body
        return body

    missing = await refused({"prompt": "x", "reference_urls": [f"{web.url}/gone.png"]}, "download")
    assert "404" in missing["detail"]
    assert missing["field"] == "reference_urls[0]"
    await refused({"prompt": "x", "reference_urls": [f"{web.url}/text"]}, "type")
    await refused({"prompt": "x", "reference_urls": [f"{web.url}/ref.png"] * 5}, "count")
    scheme = assert_problem(
        await client.post(
            "/v1/generations",
            headers=auth(key),
            json={"prompt": "x", "reference_urls": ["ftp://example.com/a.png"]},
        ),
        422,
    )
    assert "http" in scheme["detail"]
    not_image = await client.post(
        "/v1/generations",
        headers=auth(key),
        data={"prompt": "x"},
        files=[("references", ("a.pdf", b"%PDF-1.4 no image", "application/pdf"))],
    )
    assert assert_problem(not_image, 422)["reason"] == "type"
    assert await job_count(runner, 9011) == 2


# --- problems ------------------------------------------------------------------------------
async def test_errors_are_problem_json(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    key = await new_key(runner, 9012)
    assert_problem(await client.get("/v1/nothing-here", headers=auth(key)), 404)
    assert_problem(await client.delete("/v1/me", headers=auth(key)), 405)
    missing = assert_problem(
        await client.post("/v1/generations", headers=auth(key), json={"model": "demo"}), 422
    )
    assert missing["errors"][0]["loc"] == ["body", "prompt"]
    assert "prompt" in missing["detail"]
    broken = await client.post(
        "/v1/generations",
        headers={**auth(key), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert assert_problem(broken, 422)["errors"][0]["type"] == "json_invalid"
    for request, words in (
        ({"prompt": "x", "model": "nope"}, "model: 'nope' is not offered"),
        ({"prompt": "x", "mode": "nope"}, "mode: 'nope'"),
        ({"prompt": "x", "settings": {"aspect_ratio": "5:1"}}, "aspect_ratio"),
        ({"prompt": "x", "settings": {"wings": 2}}, "wings"),
        ({"prompt": "   "}, "prompt: empty"),
        ({"prompt": "x" * 1001}, "too long"),
        ({"prompt": "x", "extra": 1}, "extra"),
        ({"prompt": "x", "callback_url": "file:///etc/passwd"}, "callback_url"),
    ):
        answer = await client.post("/v1/generations", headers=auth(key), json=request)
        assert words in assert_problem(answer, 422)["detail"], (request, answer.text)
    text = await client.post(
        "/v1/generations",
        headers={**auth(key), "Content-Type": "text/plain"},
        content=b"a cat",
    )
    assert_problem(text, 415)
    bad_key = await client.post(
        "/v1/generations",
        headers={**auth(key), "Idempotency-Key": "x" * 129},
        json={"prompt": "x"},
    )
    assert_problem(bad_key, 422)
    assert await job_count(runner, 9012) == 0
    # Other routes keep FastAPI's own answers.
    other = await client.get("/no-such-page")
    assert other.status_code == 404
    assert other.json() == {"detail": "Not Found"}


# --- callbacks ------------------------------------------------------------------------------
def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """What docs/api.md tells receivers to do."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(parts["t"])) < tolerance
    return fresh and hmac.compare_digest(expected, parts["v1"])


def use_callbacks(runner: HttpRunner, retry_delays: tuple[float, ...]) -> ApiCallbacks:
    app = runner.app
    assert app is not None
    callbacks = ApiCallbacks(
        app.sessionmaker,
        public_base_url=app.settings.public_base_url or None,
        retry_delays=retry_delays,
    )
    app.events.channels[Channel.API] = callbacks
    return callbacks


async def wait_for_posts(web: LocalWeb, count: int, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while len(web.received) < count:  # noqa: ASYNC110 (another thread's server)
            await asyncio.sleep(0.05)


async def test_the_result_is_posted_signed_and_retried(runner: HttpRunner, web: LocalWeb) -> None:
    client = await runner.start(public_base_url="http://api.example.test", **FAST)
    callbacks = use_callbacks(runner, (0.2, 0.4))
    key = await new_key(runner, 9013)
    web.answers = [500]  # the receiver fails once: the callback is sent again
    created = await client.post(
        "/v1/generations",
        headers=auth(key),
        json={"prompt": "a red fox", "callback_url": f"{web.url}/hook?token=abc"},
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    await wait_for_posts(web, 2)
    for headers, body, path in web.received:
        assert path == "/hook?token=abc"
        assert headers["Content-Type"] == "application/json"
        assert headers["Lumigram-Event"] == "generation.succeeded"
        assert verify(key.signing_secret, headers["Lumigram-Signature"], body)
        assert not verify("whsec_wrong", headers["Lumigram-Signature"], body)
    payload = json.loads(web.received[-1][1])
    assert payload["id"] == job_id
    assert payload["status"] == "succeeded"
    assert payload["files"][0]["url"] == f"http://api.example.test/v1/generations/{job_id}/files/1"
    done = await wait_for_status(client, key, job_id)
    assert done["files"] == payload["files"]

    # A failure and a cancellation are posted too.
    failed = await client.post(
        "/v1/generations",
        headers=auth(key),
        json={"prompt": "a cat [demo:fail=invalid]", "callback_url": f"{web.url}/hook"},
    )
    await wait_for_posts(web, 3)
    headers, body, _ = web.received[2]
    assert headers["Lumigram-Event"] == "generation.failed"
    assert verify(key.signing_secret, headers["Lumigram-Signature"], body)
    payload = json.loads(body)
    assert payload["id"] == failed.json()["id"]
    assert payload["status"] == "failed"
    assert payload["error"]["class"] == "invalid_input"
    assert payload["files"] == []
    slow = await client.post(
        "/v1/generations",
        headers=auth(key),
        json={"prompt": "slow [demo:slow=30]", "callback_url": f"{web.url}/hook"},
    )
    await wait_for_status(client, key, slow.json()["id"], ("running",))
    await client.post(f"/v1/generations/{slow.json()['id']}/cancel", headers=auth(key))
    await wait_for_posts(web, 4)
    headers, body, _ = web.received[3]
    assert headers["Lumigram-Event"] == "generation.cancelled"
    assert json.loads(body)["status"] == "cancelled"
    await callbacks.aclose()


# --- the API and the bot share one account -----------------------------------------------
async def test_api_and_bot_share_the_balance_and_the_active_job_rule(runner: HttpRunner) -> None:
    client = await runner.start(**FAST)
    user = runner.emulator.user(user_id=9014, first_name="Mia", language_code="en")
    await user.send_text("/start")
    await user.wait_for_text("I am Lumigram")
    key = await new_key(runner, 9014, "Mia")
    assert (await me(client, key))["free_images_left"] == 3

    async def bot_generate(prompt: str) -> None:
        await user.send_text("/generate")
        await user.wait_for_text("Choose a model")
        await user.press("Demo")
        await user.wait_for_text("Now choose a mode")
        await user.press("Custom prompt")
        await user.wait_for_text("Send me what to draw")
        await user.send_text(prompt)
        await user.wait_for_text("Check your request")
        await user.press("Generate")

    slow = await client.post(
        "/v1/generations", headers=auth(key), json={"prompt": "slow boats [demo:slow=30]"}
    )
    slow_id = slow.json()["id"]
    await wait_for_status(client, key, slow_id, ("running",))
    await bot_generate("a second one")
    await user.wait_for_text("still being generated")  # the API's job counts in the bot
    cancelled = await client.post(f"/v1/generations/{slow_id}/cancel", headers=auth(key))
    assert cancelled.json()["status"] == "cancelled"
    assert (await me(client, key))["free_images_left"] == 3

    await bot_generate("a lighthouse")
    await user.wait_for(lambda m: m.kind == "photo", timeout=15)
    await asyncio.sleep(0.2)  # the job is marked succeeded right after the photo
    assert (await me(client, key))["free_images_left"] == 2  # the bot's image counts here
    created = await client.post("/v1/generations", headers=auth(key), json={"prompt": "a fox"})
    await wait_for_status(client, key, created.json()["id"])
    assert (await me(client, key))["free_images_left"] == 1
