"""Premium models end to end: marked in the list, explained when chosen (before the
prompt), unlocked by a subscription, and checked again at confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from lumigram.db import tables
from lumigram.emulator import ChatMessage, TelegramEmulator
from lumigram.runtime import BotApplication
from tests.e2e.conftest import BotRunner

# A premium twin of the demo model (the demo provider draws it), dearer in JPEG.
PREMIUM_DEMO = """
[[model]]
id = "demo-pro"
name = "Demo Pro"
provider = "demo"
provider_model = "demo-art"
premium = true
sort = 1001

[model.description]
en = "The demo, premium."
ru = "Демо, премиум."
uz = "Demo, premium."

[model.capabilities]
aspect_ratios = ["1:1", "16:9"]
output_formats = ["png", "jpeg"]
max_outputs = 2

[model.defaults]
aspect_ratio = "1:1"
output_format = "png"

[model.cost]
base = 2

[model.cost.surcharges.output_format]
jpeg = 1

[model.provider_cost]
usd = 0
"""
TIERS = [
    {"id": "basic", "name": "Basic", "stars": 250, "images": 30},
    {"id": "pro", "name": "Pro", "stars": 750, "images": 50, "premium_models": True},
]


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "premium.toml"
    path.write_text(PREMIUM_DEMO, encoding="utf-8")
    return path


async def start(runner: BotRunner, catalog_file: Path, **settings: Any) -> BotApplication:
    return await runner.start(
        catalog_file=catalog_file, subscription_tiers=TIERS, free_trial_images=0, **settings
    )


async def subscribe_to_pro(user: Any) -> str:
    await user.send_text("/subscription")
    screen = await user.wait_for_text("A subscription gives you")
    url = next(
        link
        for labels, links in zip(screen.buttons, screen.urls, strict=True)
        for label, link in zip(labels, links, strict=True)
        if label.startswith("Subscribe: Pro")
    )
    bought = await user.pay_link(url)
    assert bought.ok, bought.error_message
    await user.wait_for_text("Pro is active until")
    assert bought.charge_id is not None
    charge_id: str = bought.charge_id
    return charge_id


def asked_for_a_prompt(user: Any) -> bool:
    return any("Send me what to draw" in (m.text or "") for m in user.bot_messages)


async def test_a_premium_model_is_explained_before_the_prompt_and_unlocked_by_pro(
    runner: BotRunner, emulator: TelegramEmulator, catalog_file: Path
) -> None:
    app = await start(runner, catalog_file)
    user = emulator.user(user_id=7001, first_name="Ann")
    await user.send_text("/generate")
    picker = await user.wait_for_text("Choose a model")
    assert "💎 Demo Pro — The demo, premium." in (picker.text or "")
    assert "💎 Premium models come with a subscription: Pro." in (picker.text or "")
    assert "💎 Demo Pro 🔒" in picker.flat_buttons
    assert "✅ 🧪 Demo (offline)" in picker.flat_buttons  # not premium: no mark

    await user.press("Demo Pro")
    locked = await user.wait_for_text("is a premium model")
    text = locked.text or ""
    assert "Demo Pro is a premium model. It comes with these subscriptions:" in text
    assert "Pro: 750 ⭐ per 30 days, images per period: 50" in text
    assert "Basic" not in text  # Basic does not include premium models
    assert locked.flat_buttons == ["💎 Subscribe", "⬅️ Other models", "✖ Cancel"]
    assert not asked_for_a_prompt(user)

    await user.press("Other models")
    await user.wait_for_text("Choose a model")
    await user.press("Demo Pro")
    await user.wait_for_text("is a premium model")
    await user.press("💎 Subscribe")
    await user.wait_for_text("A subscription gives you")
    assert not asked_for_a_prompt(user)

    await subscribe_to_pro(user)
    await user.send_text("/generate")
    picker = await user.wait_for_text("Choose a model")
    assert "Premium models come with" not in (picker.text or "")
    assert "💎 Demo Pro" in picker.flat_buttons  # marked, no longer locked
    await user.press("Demo Pro")
    await user.wait_for_text("Model: Demo Pro\nNow choose a mode")
    await user.press("Nature")
    await user.wait_for_text("Send me what to draw")
    await user.send_text("a golden valley")
    summary = await user.wait_for_text("Check your request")
    assert "Subscription: uses 1 of 50" in (summary.text or "")

    # The plan ends (past the renewal grace) before the user confirms: the check at
    # confirmation still refuses.
    async with app.sessionmaker() as session:
        await session.execute(
            update(tables.subscriptions)
            .where(tables.subscriptions.c.user_id == user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(hours=2))
        )
        await session.commit()
    await app.settle_money()
    await user.wait_for_text("subscription has ended")
    await user.press("Generate", message=summary)
    await user.wait_for_text("Premium models come with a subscription that includes them")
    assert not [m for m in user.bot_messages if m.invoice is not None]
    assert not [m for m in user.bot_messages if m.kind == "photo"]


async def test_subscription_images_pay_only_for_standard_settings(
    runner: BotRunner, emulator: TelegramEmulator, catalog_file: Path
) -> None:
    await start(runner, catalog_file)
    user = emulator.user(user_id=7002, first_name="Bo")
    await subscribe_to_pro(user)
    await user.send_text("/generate")
    await user.wait_for_text("Choose a model")
    await user.press("Demo Pro")
    await user.wait_for_text("Now choose a mode")
    await user.press("City")
    await user.wait_for_text("Send me what to draw")
    await user.send_text("a bridge at night")
    summary = await user.wait_for_text("Check your request")
    assert "Subscription: uses 1 of 50" in (summary.text or "")
    assert "standard settings" not in (summary.text or "")

    await user.press("Settings", message=summary)
    await user.wait_for_text("Choose what to change")
    await user.press("Format: PNG")
    await user.wait_for_text("choose a value")
    await user.press("JPEG")
    await user.wait_for(lambda m: "Format: JPEG" in " ".join(m.flat_buttons))
    await user.press("⬅️ Back")
    dearer: ChatMessage = await user.wait_for_text("Check your request")
    text = dearer.text or ""
    assert "Subscription images cover a model's standard settings" in text
    assert "Subscription: uses" not in text
    assert "Pay 3 ⭐" in dearer.flat_buttons  # 3 credits at 1 ⭐ per credit


async def test_the_premium_explanation_is_translated(
    runner: BotRunner, emulator: TelegramEmulator, catalog_file: Path
) -> None:
    await start(runner, catalog_file)
    user = emulator.user(user_id=7003, first_name="Вера", language_code="ru")
    await user.send_text("/generate")
    picker = await user.wait_for_text("💎 Премиум-модели доступны с подпиской: Pro.")
    assert "💎 Demo Pro 🔒" in picker.flat_buttons
    await user.press("Demo Pro")
    locked = await user.wait_for_text("премиум-модель")
    assert "Pro: 750 ⭐ за 30 дней, изображений за период: 50" in (locked.text or "")
    assert "💎 Оформить подписку" in locked.flat_buttons
    assert "⬅️ Другие модели" in locked.flat_buttons


async def test_without_a_tier_that_includes_them_premium_models_are_unavailable(
    runner: BotRunner, emulator: TelegramEmulator, catalog_file: Path
) -> None:
    await runner.start(catalog_file=catalog_file, subscription_tiers=TIERS[:1])
    user = emulator.user(user_id=7004, first_name="Cy")
    await user.send_text("/generate")
    picker = await user.wait_for_text("Choose a model")
    assert "💎 Premium models are not available at the moment." in (picker.text or "")
    await user.press("Demo Pro")
    locked = await user.wait_for_text("is a premium model and is not available")
    assert "💎 Subscribe" not in locked.flat_buttons
    assert "⬅️ Other models" in locked.flat_buttons


async def test_with_no_tiers_on_sale_premium_models_are_open_to_all(
    runner: BotRunner, emulator: TelegramEmulator, catalog_file: Path
) -> None:
    await runner.start(catalog_file=catalog_file, subscription_tiers=[])
    user = emulator.user(user_id=7005, first_name="Di")
    await user.send_text("/generate")
    picker = await user.wait_for_text("Choose a model")
    assert "Premium models" not in (picker.text or "")
    assert "💎 Demo Pro" in picker.flat_buttons
    await user.press("Demo Pro")
    await user.wait_for_text("Now choose a mode")
