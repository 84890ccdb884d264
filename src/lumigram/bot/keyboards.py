"""Inline keyboards. Labels are translated with the current locale."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from lumigram.bot import render, render_money
from lumigram.bot.callbacks import (
    GenerateCallback,
    GenerateStep,
    JobAction,
    JobCallback,
    LanguageCallback,
    MenuAction,
    MenuCallback,
)
from lumigram.catalog import ModelSpec
from lumigram.domain.jobs import Job, JobStatus
from lumigram.domain.money import Account, Funding
from lumigram.domain.templates import Template
from lumigram.domain.users import LANGUAGE_NAMES, SUPPORTED_LANGUAGES
from lumigram.services.generation import Quote


def main_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🎨 Create an image"), callback_data=_gen(GenerateStep.START))
    builder.button(text=_("👤 Profile"), callback_data=MenuCallback(action=MenuAction.PROFILE))
    builder.button(text=_("⭐ Top up"), callback_data=MenuCallback(action=MenuAction.TOP_UP))
    builder.button(
        text=_("💎 Subscription"), callback_data=MenuCallback(action=MenuAction.SUBSCRIPTION)
    )
    builder.button(
        text=_("🎁 Invite friends"), callback_data=MenuCallback(action=MenuAction.REFERRALS)
    )
    builder.button(text=_("🆘 Support"), callback_data=MenuCallback(action=MenuAction.SUPPORT))
    builder.button(text=_("🌐 Language"), callback_data=MenuCallback(action=MenuAction.LANGUAGE))
    builder.button(text=_("❓ Help"), callback_data=MenuCallback(action=MenuAction.HELP))
    builder.adjust(1, 2, 2, 2, 1)
    return builder.as_markup()


def languages(current: str | None = None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in SUPPORTED_LANGUAGES:
        mark = "✅ " if code == current else ""
        builder.button(
            text=f"{mark}{LANGUAGE_NAMES[code]}", callback_data=LanguageCallback(code=code)
        )
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))
    builder.adjust(1)
    return builder.as_markup()


def back_to_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))
    return builder.as_markup()


# --- generation ----------------------------------------------------------------


def _gen(step: GenerateStep, value: str = "") -> GenerateCallback:
    return GenerateCallback(step=step, value=value)


def models(
    choices: list[ModelSpec], selected: str | None, *, premium_locked: bool = False
) -> InlineKeyboardMarkup:
    """``premium_locked``: the user's plan does not include premium models (marked 🔒)."""
    builder = InlineKeyboardBuilder()
    for model in choices:
        mark = "✅ " if model.id == selected else ""
        lock = " 🔒" if premium_locked and model.premium else ""
        builder.button(
            text=f"{mark}{render.model_label(model)}{lock}",
            callback_data=_gen(GenerateStep.MODEL, model.id),
        )
    builder.button(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL))
    builder.adjust(1)
    return builder.as_markup()


def premium_locked(can_subscribe: bool) -> InlineKeyboardMarkup:
    """Under the explanation of a premium model: subscribe, or pick another model."""
    builder = InlineKeyboardBuilder()
    if can_subscribe:
        builder.button(
            text=_("💎 Subscribe"), callback_data=MenuCallback(action=MenuAction.SUBSCRIPTION)
        )
    builder.button(text=_("⬅️ Other models"), callback_data=_gen(GenerateStep.BACK_TO_MODELS))
    builder.button(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL))
    builder.adjust(1)
    return builder.as_markup()


def modes(templates: list[Template], language: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for template in templates:
        trending = "🔥 " if template.is_trending else ""
        builder.button(
            text=f"{trending}{template.title(language)}",
            callback_data=_gen(GenerateStep.MODE, template.slug),
        )
    builder.adjust(2)
    builder.row(
        InlineKeyboardButton(
            text=_("⬅️ Back"), callback_data=_gen(GenerateStep.BACK_TO_MODELS).pack()
        ),
        InlineKeyboardButton(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL).pack()),
    )
    return builder.as_markup()


def photo_input() -> InlineKeyboardMarkup:
    """Under "send the photo to animate": change the prompt, or give up."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✏️ Edit prompt"), callback_data=_gen(GenerateStep.EDIT_PROMPT))
    builder.button(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL))
    return builder.as_markup()


def prompt_input() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("⬅️ Back"), callback_data=_gen(GenerateStep.BACK_TO_MODES))
    builder.button(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL))
    return builder.as_markup()


def summary(
    quote: Quote, reference_count: int, funding: Funding | None = None, *, paid: bool = True
) -> InlineKeyboardMarkup:
    """``paid``: the request is covered (free images, allowance, credits); else "Pay N ⭐"."""
    builder = InlineKeyboardBuilder()
    video = render.is_video(quote.model)
    if not paid:
        label = render_money.pay_button(quote.stars)
    elif funding is not None and funding.account in (Account.TRIAL, Account.ALLOWANCE):
        label = _("🎬 Create the video") if video else _("✅ Generate")
    elif funding is not None and funding.account is Account.STARS:
        label = (
            _("🎬 Create the video · {stars} ⭐") if video else _("✅ Generate · {stars} ⭐")
        ).format(stars=funding.amount)
    elif video:
        label = _(
            "🎬 Create the video · {price} credit",
            "🎬 Create the video · {price} credits",
            quote.price,
        ).format(price=quote.price)
    else:
        label = _(
            "✅ Generate · {price} credit", "✅ Generate · {price} credits", quote.price
        ).format(price=quote.price)
    builder.button(text=label, callback_data=_gen(GenerateStep.CONFIRM))
    builder.button(text=_("⚙️ Settings"), callback_data=_gen(GenerateStep.SETTINGS))
    builder.button(text=_("✏️ Edit prompt"), callback_data=_gen(GenerateStep.EDIT_PROMPT))
    if reference_count:
        builder.button(
            text=_("🗑 Clear references"), callback_data=_gen(GenerateStep.CLEAR_REFERENCES)
        )
    builder.button(text=_("✖ Cancel"), callback_data=_gen(GenerateStep.CANCEL))
    builder.adjust(1, 2, 1, 1) if reference_count else builder.adjust(1, 2, 1)
    return builder.as_markup()


def settings(quote: Quote) -> InlineKeyboardMarkup:
    """One button per setting the chosen model supports."""
    caps, values = quote.model.capabilities, quote.settings
    builder = InlineKeyboardBuilder()

    def add(label: str, setting: str) -> None:
        builder.button(text=label, callback_data=_gen(GenerateStep.SETTING, setting))

    if len(caps.aspect_ratios) > 1:
        add(_("Aspect ratio: {value}").format(value=values.get("aspect_ratio")), "aspect_ratio")
    if len(caps.output_formats) > 1:
        add(
            _("Format: {value}").format(value=str(values.get("output_format", "")).upper()),
            "output_format",
        )
    if len(caps.durations) > 1:
        add(
            _("Duration: {value}").format(value=render.duration_value(values)),
            "duration_seconds",
        )
    if len(caps.resolutions) > 1:
        add(_("Resolution: {value}").format(value=values.get("resolution")), "resolution")
    if caps.max_outputs > 1:
        count = values.get("num_outputs", 1)
        if render.is_video(quote.model):
            add(_("Videos: {value}").format(value=count), "num_outputs")
        else:
            add(_("Images: {value}").format(value=count), "num_outputs")
    if caps.seed:
        seed = values.get("seed")
        add(_("Seed: {value}").format(value=seed if seed is not None else _("random")), "seed")
    if caps.prompt_upsampling:
        state = _("on") if values.get("prompt_upsampling") else _("off")
        builder.button(
            text=_("Prompt upsampling: {value}").format(value=state),
            callback_data=_gen(
                GenerateStep.SET,
                f"prompt_upsampling={'off' if values.get('prompt_upsampling') else 'on'}",
            ),
        )
    if caps.negative_prompt:
        add(_("Negative prompt"), "negative_prompt")
    builder.button(text=_("⬅️ Back"), callback_data=_gen(GenerateStep.SUMMARY))
    builder.adjust(1)
    return builder.as_markup()


def setting_choices(setting: str, choices: list[str], current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for choice in choices:
        mark = "✅ " if choice == current else ""
        if setting == "output_format":
            label = choice.upper()
        elif setting == "duration_seconds" and choice.isdigit():
            label = render.seconds_amount(int(choice))
        else:
            label = choice
        # ':' separates callback data fields, so "16:9" travels as "16x9".
        value = choice.replace(":", "x")
        builder.button(
            text=f"{mark}{label}", callback_data=_gen(GenerateStep.SET, f"{setting}={value}")
        )
    builder.adjust(4)
    builder.row(
        InlineKeyboardButton(text=_("⬅️ Back"), callback_data=_gen(GenerateStep.SETTINGS).pack())
    )
    return builder.as_markup()


def text_setting(setting: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    label = _("🎲 Random") if setting == "seed" else _("🧹 Clear")
    builder.button(text=label, callback_data=_gen(GenerateStep.SET, f"{setting}="))
    builder.button(text=_("⬅️ Back"), callback_data=_gen(GenerateStep.SETTINGS))
    return builder.as_markup()


def job_status(job: Job) -> InlineKeyboardMarkup | None:
    if JobStatus(job.status).active and job.id is not None:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=_("✖ Cancel"), callback_data=JobCallback(action=JobAction.CANCEL, job_id=job.id)
        )
        return builder.as_markup()
    return None


def result(job_id: int, can_reference: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()

    def add(label: str, action: JobAction) -> None:
        builder.button(text=label, callback_data=JobCallback(action=action, job_id=job_id))

    add(_("🔁 Regenerate"), JobAction.REGENERATE)
    add(_("✏️ Change prompt"), JobAction.CHANGE_PROMPT)
    if can_reference:
        add(_("🖼 Use as reference"), JobAction.USE_AS_REFERENCE)
    builder.button(text=_("✨ New"), callback_data=_gen(GenerateStep.START))
    builder.adjust(2)
    return builder.as_markup()


def failed(job_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🔁 Try again"),
        callback_data=JobCallback(action=JobAction.REGENERATE, job_id=job_id),
    )
    builder.button(text=_("✨ New"), callback_data=_gen(GenerateStep.START))
    return builder.as_markup()


def history(jobs: list[Job]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for job in jobs:
        if job.id is None:
            continue
        if job.status == JobStatus.SUCCEEDED.value:
            builder.button(
                text=_("📤 #{id}").format(id=job.id),
                callback_data=JobCallback(action=JobAction.RESEND, job_id=job.id),
            )
        builder.button(
            text=_("🔁 #{id}").format(id=job.id),
            callback_data=JobCallback(action=JobAction.REGENERATE, job_id=job.id),
        )
    builder.adjust(4)
    builder.row(
        InlineKeyboardButton(
            text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN).pack()
        )
    )
    return builder.as_markup()


def cancel_active(job_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("✖ Cancel it"), callback_data=JobCallback(action=JobAction.CANCEL, job_id=job_id)
    )
    return builder.as_markup()
