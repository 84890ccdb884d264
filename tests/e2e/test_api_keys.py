"""/api through the emulator: create a key, see it work, revoke it; in Russian too."""

from __future__ import annotations

import re

from lumigram.container import Services
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.runtime import BotApplication
from tests.e2e.conftest import BotRunner

# Url-safe characters include "-", so no \b: a key may end with one.
KEY = re.compile(r"(?<![\w-])lg_[\w-]{40}(?![\w-])", re.ASCII)
SECRET = re.compile(r"(?<![\w-])whsec_[\w-]{32}(?![\w-])", re.ASCII)


async def authenticate(app: BotApplication, plaintext: str) -> int | None:
    """The id of the user the key belongs to, or None if it is not accepted."""
    async with app.sessionmaker() as session:
        key = await Services(session, app.infra).api_keys.authenticate(plaintext)
    return key.user_id if key is not None else None


def revoke_buttons(message: ChatMessage) -> list[str]:
    return [label for label in message.flat_buttons if label.startswith("🗑")]


async def test_a_key_made_in_the_bot_works_until_it_is_revoked(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start(public_base_url="https://lumigram.example")
    user = emulator.user(user_id=2101, first_name="Ann")
    await user.send_text("/api")
    screen = await user.wait_for_text("API keys")
    assert "HTTP API" in (screen.text or "")
    assert "https://lumigram.example/docs" in (screen.text or "")
    assert "You have no API keys yet" in (screen.text or "")
    assert revoke_buttons(screen) == []

    await user.press("Create a key", message=screen)
    shown = await user.wait_for(lambda m: m.text is not None and KEY.search(m.text) is not None)
    text = shown.text or ""
    assert "will not be shown again" in text
    assert "Keep them secret" in text
    [plaintext] = KEY.findall(text)
    [secret] = SECRET.findall(text)
    # Both are monospace, to copy with one tap.
    code = [
        text[entity["offset"] : entity["offset"] + entity["length"]]
        for entity in shown.entities
        if entity["type"] == "code"
    ]
    assert plaintext in code
    assert secret in code
    assert await authenticate(app, plaintext) == user.id

    # The list shows the key by its prefix only, never the whole key.
    listing = await user.wait_for_text("Your keys")
    assert plaintext[:11] + "…" in (listing.text or "")
    assert plaintext not in (listing.text or "")
    assert "Key 1" in (listing.text or "")
    assert "last used" in (listing.text or "") or "not used yet" in (listing.text or "")
    await user.wait_idle()
    assert user.render().count(plaintext) == 1  # shown once

    await user.send_text("/api")  # a second screen, left open
    stale = await user.wait_for_text("Your keys")
    [stale_revoke] = revoke_buttons(stale)

    [revoke] = revoke_buttons(listing)
    assert plaintext[:11] in revoke
    await user.press(revoke, message=listing)
    confirm = await user.wait_for_text("Programs that use it stop working")
    assert await authenticate(app, plaintext) == user.id  # nothing revoked yet

    # Cancel first: the key stays.
    await user.press("Cancel", message=confirm)
    listing = await user.wait_for_text("Your keys")
    assert await authenticate(app, plaintext) == user.id
    await user.press(revoke_buttons(listing)[0], message=listing)
    confirm = await user.wait_for_text("Programs that use it stop working")
    query = await user.press("Yes, revoke it", message=confirm)
    answer = await user.wait_callback_answer(query)
    assert answer.text == "The key is revoked."
    after = await user.wait_for_text("You have no API keys yet")
    assert revoke_buttons(after) == []
    assert await authenticate(app, plaintext) is None

    # A second screen opened before the revocation still offers the key: pressing it
    # changes nothing and says so.
    query = await user.press(stale_revoke, message=stale)
    answer = await user.wait_callback_answer(query)
    assert answer.text == "This key does not exist any more."
    await user.wait_for_text("You have no API keys yet")


async def test_another_user_cannot_revoke_my_key_and_the_limit_is_told(
    runner: BotRunner, emulator: TelegramEmulator
) -> None:
    app = await runner.start()
    ann = emulator.user(user_id=2102, first_name="Ann")
    await ann.send_text("/api")
    screen = await ann.wait_for_text("API keys")
    assert "/docs" not in (screen.text or "")  # no PUBLIC_BASE_URL: no link
    for number in range(1, 6):
        await ann.press("Create a key", message=screen)
        await ann.wait_for_text(f"New API key: Key {number}")
        await ann.wait_idle()
    plaintexts = KEY.findall(ann.render())
    assert len(plaintexts) == 5
    listing = next(m for m in reversed(ann.bot_messages) if "Your keys" in (m.text or ""))
    assert "5 of 5" in (listing.text or "")
    query = await ann.press("Create a key", message=listing)
    answer = await ann.wait_callback_answer(query)
    assert answer.show_alert
    assert answer.text == (
        "You already have 5 keys, the most allowed. Revoke one to create another."
    )

    # Bo presses a (forged) confirmation for one of Ann's keys: nothing happens.
    async with app.sessionmaker() as session:
        [key] = [
            k
            for k in await Services(session, app.infra).api_keys.list(ann.id)
            if k.prefix == plaintexts[0][:11]
        ]
    bo = emulator.user(user_id=2103, first_name="Bo")
    await bo.send_text("/api")
    bo_screen = await bo.wait_for_text("API keys")
    assert revoke_buttons(bo_screen) == []
    async with app.sessionmaker() as session:
        assert not await Services(session, app.infra).api_keys.revoke(bo.id, key.id or 0)
    assert await authenticate(app, plaintexts[0]) == ann.id


async def test_api_speaks_russian(runner: BotRunner, emulator: TelegramEmulator) -> None:
    app = await runner.start()
    user = emulator.user(user_id=2104, first_name="Иван", language_code="ru")
    await user.send_text("/api")
    screen = await user.wait_for_text("API-ключи")
    assert "У вас пока нет API-ключей" in (screen.text or "")
    await user.press("Создать ключ", message=screen)
    shown = await user.wait_for_text("больше они показаны не будут")
    [plaintext] = KEY.findall(shown.text or "")
    assert await authenticate(app, plaintext) == user.id
    listing = await user.wait_for_text("Ваши ключи")
    assert "ещё не использовался" in (listing.text or "") or "последнее использование" in (
        listing.text or ""
    )
    await user.press("Отозвать", message=listing)
    confirm = await user.wait_for_text("Отозвать ключ")
    query = await user.press("Да, отозвать", message=confirm)
    assert (await user.wait_callback_answer(query)).text == "Ключ отозван."
    assert await authenticate(app, plaintext) is None
    menu = {c["command"]: c["description"] for c in emulator.commands(runner.token, "ru")}
    assert menu["api"] == "API-ключи для ваших программ"
