"""The whole application: a video job woken by KIE's signed callback, or by its polls.

The bot, its workers and the HTTP server run together (``lumigram run``), with
``PUBLIC_BASE_URL`` pointing at the server, so every KIE task is created with a
``callBackUrl`` and FakeKie POSTs the signed callback there when the task ends. The
worker's polls are made a minute apart, so a job that finishes in seconds was finished
by its callback; with the callbacks lost the job still finishes, by its poll.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lumigram.emulator import TelegramEmulator
from lumigram.fakes.kie import FakeKie
from lumigram.providers.kie import KieProvider
from tests.e2e.test_video import KEY, VIDEO, grant, open_video_summary, register
from tests.http.conftest import HttpRunner

HMAC_KEY = "kie-webhook-hmac-key-for-the-app"
SLOW_POLL = 60.0
PLACEHOLDER = "http://placeholder.invalid"


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    fake = FakeKie(api_key=KEY, video=VIDEO, run_seconds=1.0, hmac_key=HMAC_KEY.encode())
    await fake.start()
    yield fake
    await fake.stop()


async def start_app(
    runner: HttpRunner, kie: FakeKie, *, poll: float = SLOW_POLL
) -> httpx.AsyncClient:
    client = await runner.start(
        public_base_url=PLACEHOLDER,
        kie_api_key=KEY,
        kie_base_url=kie.base_url,
        kie_upload_base_url=kie.base_url,
        kie_webhook_hmac_key=HMAC_KEY,
    )
    app = runner.app
    assert app is not None
    provider = app.infra.providers["kie"]
    assert isinstance(provider, KieProvider)
    assert provider.webhook_hmac_key == HMAC_KEY.encode()
    assert provider.callback_url == f"{PLACEHOLDER}/callbacks/kie"
    provider.callback_url = f"{client.base_url}/callbacks/kie"  # the port is known now
    policy = app.runner.policy
    rules = dataclasses.replace(policy.rules, first_poll=poll, max_poll_interval=poll)
    app.runner.policy = dataclasses.replace(policy, rules=rules)
    return client


async def make_video(runner: HttpRunner, emulator: TelegramEmulator, user_id: int) -> Any:
    user = emulator.user(user_id=user_id, first_name="Cal")
    await register(user)
    assert runner.app is not None
    await grant(runner.app, user_id, 100)
    summary = await open_video_summary(
        user, "Wan 2.2 (text to video)", "fireflies over a pond", with_photo=False, required=False
    )
    await user.press(next(b for b in summary.flat_buttons if "Create the video" in b))
    return user


async def test_the_signed_callback_delivers_the_video_before_the_next_poll(
    runner: HttpRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    client = await start_app(runner, kie)
    started = time.monotonic()
    user = await make_video(runner, emulator, 7101)
    await user.wait_for(lambda m: m.kind == "video", timeout=30)
    assert time.monotonic() - started < SLOW_POLL / 2  # not by the poll a minute later
    [task] = kie.tasks.values()
    assert task.body["callBackUrl"] == f"{client.base_url}/callbacks/kie"
    [delivered] = kie.delivered()
    assert delivered.status == 200
    assert "X-Webhook-Signature" in delivered.headers

    # The same callback again (a replay), and a forged one: nothing is sent twice.
    again = await client.post("/callbacks/kie", content=delivered.body, headers=delivered.headers)
    assert again.status_code == 200
    forged = dict(delivered.headers, **{"X-Webhook-Signature": "AAAA"})
    refused = await client.post("/callbacks/kie", content=delivered.body, headers=forged)
    assert refused.status_code == 401
    await user.wait_idle(quiet=1.0)
    assert len([m for m in user.bot_messages if m.kind == "video"]) == 1


async def test_a_lost_callback_only_waits_for_the_next_poll(
    runner: HttpRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    await start_app(runner, kie, poll=2.0)
    kie.lose_callbacks(1)
    user = await make_video(runner, emulator, 7102)
    await user.wait_for(lambda m: m.kind == "video", timeout=30)
    assert kie.callbacks_lost == [next(iter(kie.tasks))]
    assert kie.delivered() == []


async def test_an_early_callback_changes_nothing_but_the_timing(
    runner: HttpRunner, emulator: TelegramEmulator, kie: FakeKie
) -> None:
    await start_app(runner, kie, poll=2.0)
    kie.early_callbacks(1)  # "success" at create, while the record still says running
    user = await make_video(runner, emulator, 7103)
    await user.wait_for(lambda m: m.kind == "video", timeout=30)
    [early] = kie.callback_attempts
    assert early.early
    await user.wait_idle(quiet=1.0)
    assert len([m for m in user.bot_messages if m.kind == "video"]) == 1
