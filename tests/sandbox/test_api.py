"""The sandbox's simulation API over HTTP: the real bot (a child process, as
``lumigram sandbox`` runs it) against the emulator, driven as the web UI drives it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lumigram.sandbox.serialize import entities_to_html
from lumigram.sandbox.server import SandboxServer
from lumigram.sandbox.session import BotProcess, Sandbox

JSON = dict[str, Any]
ADMIN = 1001  # the first user of a fresh sandbox


class RunningSandbox:
    """The sandbox server in a thread of its own (its own event loop), as the command runs it."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUMIGRAM")}
        env["LOG_LEVEL"] = "INFO"
        self.sandbox = Sandbox(data_dir, cwd=data_dir, base_env=env)
        self.server = SandboxServer(self.sandbox)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.url = await self.server.bind("127.0.0.1", 0)
            await self.server.start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = RunningSandbox(tmp_path_factory.mktemp("sandbox") / "data")
    running.start()
    yield running
    running.stop()
    assert not running.sandbox.bot_process.running


@pytest.fixture(scope="module")
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        yield client


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def transcript(api: httpx.Client, user_id: int) -> list[JSON]:
    answer = api.get(f"/api/users/{user_id}/messages")
    assert answer.status_code == 200, answer.text
    messages: list[JSON] = answer.json()
    return messages


def bot_message(
    api: httpx.Client, user_id: int, predicate: Callable[[JSON], bool], *, after: int = 0
) -> JSON:
    def find() -> JSON | None:
        for message in transcript(api, user_id):
            if message["from"] == "bot" and message["message_id"] > after and predicate(message):
                return message
        return None

    found: JSON = wait_until("a bot message", find, timeout=40)
    return found


def has_text(substring: str) -> Callable[[JSON], bool]:
    return lambda message: substring in (message["text"] or "")


def send(api: httpx.Client, user_id: int, text: str) -> JSON:
    answer = api.post(f"/api/users/{user_id}/messages", json={"text": text})
    assert answer.status_code == 200, answer.text
    message: JSON = answer.json()
    assert message["from"] == "user"
    return message


def press(api: httpx.Client, user_id: int, message: JSON, label: str) -> JSON:
    answer = api.post(
        f"/api/users/{user_id}/press", json={"message_id": message["message_id"], "button": label}
    )
    assert answer.status_code == 200, answer.text
    result: JSON = answer.json()
    return result


def wait_ready(api: httpx.Client) -> None:
    wait_until("the bot to poll", lambda: api.get("/api/state").json()["bot"]["ready"], 60)


def labels(message: JSON) -> list[str]:
    return [button["text"] for row in message["buttons"] for button in row]


def test_state_has_the_admin_user_and_the_running_bot(api: httpx.Client) -> None:
    state = api.get("/api/state").json()
    assert state["bot"]["username"] == "lumigram_bot"
    assert state["bot"]["running"] is True
    assert state["flood"] == {"enabled": True}
    assert state["users"][0] | {"stars": 0} == {
        "id": ADMIN,
        "first_name": "Alex",
        "language_code": "en",
        "is_admin": True,
        "blocked": False,
        "stars": 0,
        "reply_keyboard": [],
    }
    assert api.get("/").status_code in (200, 404)  # the UI's page, once it is there


def test_start_create_a_nature_image_and_get_the_photo(api: httpx.Client) -> None:
    wait_ready(api)
    sent = send(api, ADMIN, "/start")
    welcome = bot_message(api, ADMIN, has_text("I am Lumigram"), after=sent["message_id"])
    assert "<b>Alex</b>" in welcome["html"]
    assert {"text": "🎨 Create an image", "type": "callback"} in welcome["buttons"][0]

    press(api, ADMIN, welcome, "🎨 Create an image")
    models = bot_message(api, ADMIN, has_text("Choose a model"))
    press(api, ADMIN, models, "Demo")
    modes = bot_message(api, ADMIN, has_text("choose a mode"))
    press(api, ADMIN, modes, "Nature")
    bot_message(api, ADMIN, has_text("Send me what to draw"))
    prompt = send(api, ADMIN, "a red fox in the snow")
    summary = bot_message(api, ADMIN, has_text("Check your request"), after=prompt["message_id"])
    press(api, ADMIN, summary, "Generate")
    photo = bot_message(api, ADMIN, lambda m: m["kind"] == "photo", after=prompt["message_id"])
    assert "a red fox in the snow" in photo["text"]
    media = photo["media"][0]
    assert media["type"] == "photo"
    assert media["width"]
    assert media["height"]

    image = api.get(media["url"])
    assert image.status_code == 200
    assert image.headers["content-type"] in ("image/jpeg", "image/png")
    assert image.content[:3] == b"\xff\xd8\xff" or image.content[:4] == b"\x89PNG"

    calls = api.get("/api/calls", params={"after": 0}).json()
    sent_photos = [c for c in calls if c["method"] == "sendPhoto"]
    assert sent_photos
    assert sent_photos[-1]["ok"]
    assert sent_photos[-1]["result_summary"].startswith("message #")
    uploaded = sent_photos[-1]["params"]["photo"]  # a short description, never the bytes
    assert isinstance(uploaded, str)
    assert len(uploaded) < 200
    last = calls[-1]["seq"]
    assert api.get("/api/calls", params={"after": last}).json() == []
    # The bot broke no rule of the spec. Flood control may answer 429 (the embedded bot has
    # no flood limiter of its own and retries as Telegram asks): "throttled", not a violation.
    refused = [(c["method"], c["error"]) for c in calls if c["violation"]]
    assert not refused, refused
    assert all(c["throttled"] == (c["status"] == 429) for c in calls)
    assert not any(c["violation"] for c in calls if c["status"] == 429)
    commands = api.get("/api/commands", params={"language": "en"}).json()
    assert "start" in [c["command"] for c in commands]


def test_a_russian_user_gets_the_russian_welcome(api: httpx.Client) -> None:
    wait_ready(api)
    created = api.post("/api/users", json={"first_name": "Olga", "language_code": "ru"})
    assert created.status_code == 200, created.text
    user = created.json()
    assert user["id"] != ADMIN
    assert user["is_admin"] is False
    send(api, user["id"], "/start")
    welcome = bot_message(api, user["id"], has_text("Я Lumigram"))
    assert "🌐 Язык" in labels(welcome)
    assert user["id"] in [u["id"] for u in api.get("/api/state").json()["users"]]


def test_events_stream_a_new_message(sandbox: RunningSandbox, api: httpx.Client) -> None:
    wait_ready(api)
    seen: list[JSON] = []
    with httpx.stream("GET", sandbox.url + "/api/events", timeout=30) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        event = None
        sent: JSON | None = None
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "state" and sent is None:
                assert json.loads(line.removeprefix("data: "))["bot"]["username"]
                sent = send(api, ADMIN, "/start")
            elif line.startswith("data: ") and event == "message":
                data = json.loads(line.removeprefix("data: "))
                seen.append(data)
                if data["message"]["from"] == "bot" and "I am Lumigram" in (
                    data["message"]["text"] or ""
                ):
                    break
    assert sent is not None
    assert seen[0]["user_id"] == ADMIN
    assert seen[0]["message"]["message_id"] == sent["message_id"]


def test_errors_are_json(api: httpx.Client) -> None:
    assert api.get("/api/users/999/messages").json() == {"error": "no user 999"}
    answer = api.post(f"/api/users/{ADMIN}/messages", json={"txt": "hi"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "text is required"}
    assert api.post("/api/clock", json={"advance_seconds": 60}).status_code == 501
    assert api.get("/api/nothing").status_code == 404
    stars = api.post(f"/api/users/{ADMIN}/stars", json={"amount": 100}).json()["stars"]
    assert api.post(f"/api/users/{ADMIN}/stars", json={"amount": 1}).json()["stars"] == stars + 1


def test_restart_keeps_the_conversation_going(api: httpx.Client) -> None:
    wait_ready(api)
    before = api.get("/api/state").json()["bot"]["restarts"]
    answer = api.post("/api/bot/restart")
    assert answer.status_code == 200, answer.text
    assert answer.json()["bot"]["restarts"] == before + 1
    sent = send(api, ADMIN, "/start")  # queued while the bot starts again
    bot_message(api, ADMIN, has_text("I am Lumigram"), after=sent["message_id"])


def test_pay_an_invoice_with_the_users_stars(api: httpx.Client) -> None:
    wait_ready(api)
    stars = api.get(f"/api/users/{ADMIN}").json()["stars"]
    sent = send(api, ADMIN, "/topup")
    packages = bot_message(api, ADMIN, has_text("Top up"), after=sent["message_id"])
    press(api, ADMIN, packages, "100 credits")
    invoice = bot_message(api, ADMIN, lambda m: m["invoice"] is not None, after=sent["message_id"])
    assert invoice["invoice"]["currency"] == "XTR"
    assert invoice["buttons"][0][0]["type"] == "pay"
    price = invoice["invoice"]["total_amount"]

    paid = api.post(f"/api/users/{ADMIN}/pay", json={"message_id": invoice["message_id"]})
    assert paid.status_code == 200, paid.text
    assert paid.json()["ok"] is True, paid.json()
    assert paid.json()["error_message"] is None
    assert api.get(f"/api/users/{ADMIN}").json()["stars"] == stars - price
    bot_message(api, ADMIN, has_text("+100 credits"), after=invoice["message_id"])
    kinds = [m["kind"] for m in transcript(api, ADMIN)]
    assert "successful_payment" in kinds

    not_invoice = api.post(f"/api/users/{ADMIN}/pay", json={"message_id": sent["message_id"]})
    assert not_invoice.status_code == 400
    assert "not an invoice" in not_invoice.json()["error"]


def test_subscribe_by_an_invoice_link_then_cancel(api: httpx.Client) -> None:
    wait_ready(api)
    user = api.post("/api/users", json={"first_name": "Sub", "language_code": "en"}).json()
    sent = send(api, user["id"], "/subscription")
    offer = bot_message(api, user["id"], has_text("30 days"), after=sent["message_id"])
    link = next(b for row in offer["buttons"] for b in row if b.get("invoice"))
    assert link["type"] == "url"
    assert link["invoice"]["subscription_period"] == 30 * 24 * 3600
    paid = api.post(f"/api/users/{user['id']}/pay", json={"url": link["url"]}).json()
    assert paid["ok"] is True, paid
    bot_message(api, user["id"], has_text("is active until"), after=offer["message_id"])
    [subscription] = api.get(f"/api/users/{user['id']}/subscriptions").json()
    assert subscription["amount"] == link["invoice"]["total_amount"]
    assert subscription["canceled"] is False
    changed = api.post(
        f"/api/users/{user['id']}/subscriptions/{subscription['charge_id']}",
        json={"action": "cancel"},
    )
    assert changed.json() == {"ok": True, "error_message": None}
    [subscription] = api.get(f"/api/users/{user['id']}/subscriptions").json()
    assert subscription["canceled"] is True


def test_making_a_user_admin_restarts_the_bot_with_admin_ids(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    wait_ready(api)
    user = api.post("/api/users", json={"first_name": "Root", "language_code": "en"}).json()
    before = api.get("/api/state").json()["bot"]["restarts"]
    made = api.post(f"/api/users/{user['id']}/admin", json={"admin": True})
    assert made.status_code == 200, made.text
    assert made.json()["is_admin"] is True
    assert api.get("/api/state").json()["bot"]["restarts"] == before + 1
    admins = sandbox.sandbox.bot_env()["ADMIN_IDS"].split(",")
    assert sorted(admins) == sorted([str(ADMIN), str(user["id"])])
    sent = send(api, user["id"], "/start")
    bot_message(api, user["id"], has_text("I am Lumigram"), after=sent["message_id"])


# -- without the bot process -----------------------------------------------------------------


def test_entities_become_safe_html() -> None:
    text = "Hi <you> 🎨 bold and link\nnext"
    entities = [
        {"type": "bold", "offset": 12, "length": 4},  # after the emoji: 2 UTF-16 units
        {"type": "italic", "offset": 14, "length": 6},  # overlaps the bold
        {"type": "text_link", "offset": 21, "length": 4, "url": "https://example.com/?a=1&b"},
        {"type": "text_link", "offset": 0, "length": 2, "url": "javascript:alert(1)"},
    ]
    assert entities_to_html(text, entities) == (
        "Hi &lt;you&gt; 🎨 <b>bo<i>ld</i></b><i> and</i> "
        '<a href="https://example.com/?a=1&amp;b" target="_blank" '
        'rel="noopener noreferrer">link</a><br>next'
    )
    assert entities_to_html("x", None) == "x"


async def test_the_token_and_the_users_survive_a_new_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_bot(self: BotProcess, env: dict[str, str]) -> None:
        self.started_at = time.time()

    monkeypatch.setattr(BotProcess, "start", no_bot)
    first = Sandbox(tmp_path / "data")
    await first.start()
    olga = first.add_user("Olga", "ru")
    first.add_stars(olga.id, 7)
    first.set_blocked(olga.id, True)
    await olga.sim.send_text("/start")  # the user writes again: unblocked
    first.set_blocked(olga.id, True)
    token, next_id = first.token, olga.chat.next_message_id
    await first.stop()

    again = Sandbox(tmp_path / "data")
    await again.start()
    try:
        assert again.token == token
        assert again.bot_env()["BOT_TOKEN"] == token
        assert again.bot_env()["ADMIN_IDS"] == "1001"
        users = {u["id"]: u for u in again.state_json()["users"]}
        assert users[olga.id]["stars"] == olga.stars
        assert users[olga.id]["blocked"] is True
        assert users[olga.id]["language_code"] == "ru"
        assert again.get_user(olga.id).chat.next_message_id == next_id
    finally:
        await again.stop()


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "lumigram", "sandbox", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--port" in lines[0]
    assert str(port) in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sandbox-data").exists()  # nothing was started
