"""Texts the handlers send, built from translated templates (HTML parse mode)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from aiogram.utils.i18n import gettext as _

from lumigram.bot import render_money
from lumigram.catalog import ModelSpec
from lumigram.domain.generation import OutputKind
from lumigram.domain.jobs import ErrorClass, Job, JobStatus
from lumigram.domain.prompts import PromptError, PromptProblem
from lumigram.domain.subscriptions import Tier
from lumigram.domain.users import User
from lumigram.services.account import Overview
from lumigram.services.generation import VIDEO_PHOTO_MIN_SIDE, Draft, Quote

CAPTION_LIMIT = 1024
# The provider's words for a job that waits for its turn (KIE: "waiting", "queuing").
QUEUE_STATES = frozenset({"waiting", "queuing", "queueing", "wait"})


def welcome(user: User, overview: Overview | None = None) -> str:
    """The greeting; with ``overview``, what the user has to spend below it."""
    text = _(
        "👋 Hello, <b>{name}</b>!\n\n"
        "I am Lumigram: I turn your words into images with the best AI models.\n"
        "Choose what to do below."
    ).format(name=escape(user.first_name or user.username or "friend"))
    if overview is None:
        return text
    return "\n".join([text, "", *balance_lines(overview)])


def balance_lines(overview: Overview) -> list[str]:
    """Credits, free images, Stars left over and the subscription, as the profile shows them."""
    lines = [
        _("💰 <b>Your balance</b>"),
        _("Credits: <b>{credits}</b>").format(credits=overview.credits),
        _("Free images left: <b>{count}</b>").format(count=overview.trial_left),
    ]
    if overview.stars:
        lines.append(_("Stars balance: <b>{stars} ⭐</b>").format(stars=overview.stars))
    lines.append(render_money.subscription_line(overview.subscription))
    return lines


def menu() -> str:
    return _("🏠 <b>Main menu</b>\nChoose what to do.")


def help_text() -> str:
    return _(
        "<b>How to use Lumigram</b>\n\n"
        "/generate — create an image: pick a model and a mode, describe the picture, "
        "optionally add reference photos and settings, confirm\n"
        "/history — your recent images, to re-send or regenerate\n"
        "/cancel — stop the image being generated\n"
        "/menu — main menu\n"
        "/language — change the language\n"
        "/help — this help"
    )


def language_prompt() -> str:
    return _("🌐 Choose your language:")


def language_changed() -> str:
    return _("✅ Language changed to English.")


def banned(reason: str | None) -> str:
    text = _("⛔ Your access to this bot has been restricted.")
    if reason:
        text += "\n" + _("Reason: {reason}").format(reason=escape(reason))
    return text


def throttled() -> str:
    return _("⏳ Too many requests. Please wait a moment.")


def stale_button() -> str:
    return _("This button is no longer valid. Use /menu to start again.")


def unknown_message() -> str:
    return _("I did not understand that. Use /menu to see what I can do.")


def error_happened() -> str:
    return _("😔 Something went wrong on our side. Please try again in a moment.")


# --- generation ----------------------------------------------------------------


PREMIUM_MARK = "💎"  # the subscription's sign: premium models need a tier that includes them


def model_label(model: ModelSpec) -> str:
    """The model's name, with the premium mark where it needs a subscription tier."""
    return f"{PREMIUM_MARK} {model.name}" if model.premium else model.name


def choose_model(
    models: Sequence[ModelSpec], language: str, unlocking: Sequence[Tier] | None = None
) -> str:
    """``unlocking``: None when the user may use premium models, else the tiers that
    include them (explained below the list, before the user picks one)."""
    lines = [_("🎨 <b>Choose a model</b>")]
    for model in models:
        lines.append(
            f"• <b>{escape(model_label(model))}</b> — {escape(model.description_for(language))}"
        )
    if unlocking is not None and any(model.premium for model in models):
        lines.append("")
        lines.append(premium_note(unlocking))
    return "\n".join(lines)


def premium_note(unlocking: Sequence[Tier]) -> str:
    if not unlocking:
        return _("💎 Premium models are not available at the moment.")
    return _("💎 Premium models come with a subscription: {tiers}.").format(
        tiers=", ".join(escape(tier.name) for tier in unlocking)
    )


def premium_locked(model: ModelSpec, unlocking: Sequence[Tier]) -> str:
    """Shown when a premium model is chosen without a tier that includes it."""
    if not unlocking:
        return _(
            "💎 <b>{model}</b> is a premium model and is not available at the moment. "
            "Please choose another model."
        ).format(model=escape(model.name))
    lines = [
        _("💎 <b>{model}</b> is a premium model. It comes with these subscriptions:").format(
            model=escape(model.name)
        )
    ]
    lines += [
        "• "
        + _("<b>{name}</b>: {stars} ⭐ per 30 days, images per period: {images}").format(
            name=escape(tier.name), stars=tier.stars, images=tier.images
        )
        for tier in unlocking
    ]
    lines += ["", _("Subscribe to use it, or choose another model.")]
    return "\n".join(lines)


def choose_mode(model: ModelSpec) -> str:
    return _("🎨 Model: <b>{model}</b>\nNow choose a mode:").format(model=escape(model.name))


def is_video(model: ModelSpec) -> bool:
    return model.capabilities.kind is OutputKind.VIDEO


def ask_prompt(model: ModelSpec, mode: str, limit: int) -> str:
    if is_video(model):
        text = _(
            "🎬 <b>{mode}</b> · {model}\n\n"
            "Describe the video you want, in your own words (up to {limit} character).",
            "🎬 <b>{mode}</b> · {model}\n\n"
            "Describe the video you want, in your own words (up to {limit} characters).",
            limit,
        ).format(mode=escape(mode), model=escape(model.name), limit=limit)
    else:
        text = _(
            "✍️ <b>{mode}</b> · {model}\n\n"
            "Send me what to draw, in your own words (up to {limit} character).",
            "✍️ <b>{mode}</b> · {model}\n\n"
            "Send me what to draw, in your own words (up to {limit} characters).",
            limit,
        ).format(mode=escape(mode), model=escape(model.name), limit=limit)
    refs = model.capabilities.max_reference_images
    if model.capabilities.min_reference_images:
        text += "\n" + _("After the description, send the photo to animate.")
    elif refs:
        text += "\n" + _(
            "You can also send up to {count} reference photo.",
            "You can also send up to {count} reference photos.",
            refs,
        ).format(count=refs)
    return text


def prompt_problem(error: PromptError, length: int) -> str:
    if error.problem is PromptProblem.TOO_LONG:
        return _(
            "That prompt is too long: {length} character, the limit is {limit}. "
            "Please shorten it and send it again.",
            "That prompt is too long: {length} characters, the limit is {limit}. "
            "Please shorten it and send it again.",
            length,
        ).format(length=length, limit=error.limit)
    if error.problem is PromptProblem.NO_TEXT:
        return _("That message has no text I can use. Please describe the picture in words.")
    return _("Please send the prompt as a text message.")


def ask_photo(model: ModelSpec) -> str:
    """After the prompt, for a model that animates a photo (image-to-video)."""
    return _("📷 Now send the photo to animate: <b>{model}</b> turns it into a video.").format(
        model=escape(model.name)
    )


def photo_required() -> str:
    """Confirm pressed before the photo to animate came (a callback alert, ≤ 200 chars)."""
    return _("📷 Send the photo to animate first: this model makes the video from it.")


def summary(quote: Quote, draft: Draft, language: str, price_line: str | None = None) -> str:
    model = quote.model
    caps = model.capabilities
    video = is_video(model)
    lines = [
        _("🧾 <b>Check your video request</b>") if video else _("🧾 <b>Check your request</b>"),
        "",
        _("Model: <b>{model}</b>").format(model=escape(model.name)),
        _("Mode: <b>{mode}</b>").format(mode=escape(quote.template.title(language))),
        _("Prompt: <i>{prompt}</i>").format(prompt=escape(draft.prompt)),
    ]
    lines.extend(setting_lines(quote, language))
    missing = draft.missing_photos(model)
    if caps.min_reference_images:
        lines.append(
            _("Photo to animate: {value}").format(
                value=_("not sent yet") if missing else _("added")
            )
        )
    elif caps.max_reference_images:
        lines.append(
            _("Reference images: {count} of {limit}").format(
                count=len(draft.reference_keys), limit=caps.max_reference_images
            )
        )
    price = quote.price
    lines += [
        "",
        price_line
        or _("Price: <b>{price} credit</b>", "Price: <b>{price} credits</b>", price).format(
            price=price
        ),
    ]
    if not quote.standard:
        lines.append(not_standard_notice())
    if model.provider == "demo":
        lines.append(demo_notice())
    if missing:
        lines.append(_("📷 Send the photo to animate."))
    elif (
        not caps.min_reference_images
        and caps.max_reference_images
        and len(draft.reference_keys) < caps.max_reference_images
    ):
        lines.append(_("Send photos to add reference images."))
    return "\n".join(lines)


def seconds_amount(seconds: int) -> str:
    """A number of seconds in the user's language ("1 second", "5 seconds")."""
    return _("{seconds} second", "{seconds} seconds", seconds).format(seconds=seconds)


def duration_value(settings: dict[str, object]) -> str:
    value = settings.get("duration_seconds")
    return seconds_amount(value) if isinstance(value, int) else "—"


def setting_lines(quote: Quote, language: str) -> list[str]:
    settings, caps = quote.settings, quote.model.capabilities
    if is_video(quote.model):
        ratio = settings.get("aspect_ratio", "—")
        parts = [
            _("Aspect ratio: {value}").format(
                value=_("as the photo") if ratio == "auto" else ratio
            ),
            _("Duration: {value}").format(value=duration_value(settings)),
        ]
        if caps.resolutions:
            parts.append(_("Resolution: {value}").format(value=settings.get("resolution", "—")))
        if caps.max_outputs > 1:
            parts.append(_("Videos: {value}").format(value=settings.get("num_outputs", 1)))
        lines = [" · ".join(parts)]
    else:
        lines = [
            _("Aspect ratio: {value}").format(value=settings.get("aspect_ratio", "—"))
            + " · "
            + _("Format: {value}").format(value=str(settings.get("output_format", "—")).upper())
            + " · "
            + _("Images: {value}").format(value=settings.get("num_outputs", 1))
        ]
    if caps.seed:
        seed = settings.get("seed")
        lines.append(_("Seed: {value}").format(value=seed if seed is not None else _("random")))
    if caps.prompt_upsampling:
        lines.append(
            _("Prompt upsampling: {value}").format(
                value=_("on") if settings.get("prompt_upsampling") else _("off")
            )
        )
    if caps.negative_prompt:
        negative = settings.get("negative_prompt")
        lines.append(
            _("Negative prompt: {value}").format(value=escape(negative) if negative else _("none"))
        )
    return lines


def settings_screen() -> str:
    return _("⚙️ <b>Settings</b>\nChoose what to change:")


def choose_value(setting: str) -> str:
    names = {
        "aspect_ratio": _("Aspect ratio"),
        "output_format": _("Format"),
        "num_outputs": _("Number of images"),
        "duration_seconds": _("Duration"),
        "resolution": _("Resolution"),
    }
    return _("⚙️ <b>{setting}</b>: choose a value").format(setting=names.get(setting, setting))


def ask_seed(limit: int) -> str:
    return _("Send the seed as a whole number from 0 to {limit}, or press Random.").format(
        limit=limit
    )


def bad_seed(limit: int) -> str:
    return _("The seed must be a whole number from 0 to {limit}.").format(limit=limit)


def ask_negative_prompt() -> str:
    return _("Send the negative prompt (what the image should avoid), or press Clear.")


def not_standard_notice() -> str:
    return _(
        "💎 Subscription images cover a model's standard settings; with these settings "
        "the request is paid with credits or Stars."
    )


def demo_notice() -> str:
    return _("🧪 Demo model: images are drawn offline, not by an AI model.")


def queued(position: int) -> str:
    return _("⏳ Your request is in the queue (position {position}).").format(position=position)


def generating(percent: int | None, seconds: int) -> str:
    if percent is not None:
        return _("🎨 Generating… {percent}%").format(percent=percent)
    return _("🎨 Generating… {seconds} s").format(seconds=seconds)


def elapsed(seconds: int) -> str:
    """Time since a job started: seconds, then minutes and seconds."""
    if seconds < 60:
        return seconds_amount(seconds)
    return _("{minutes} min {seconds} s").format(minutes=seconds // 60, seconds=seconds % 60)


def video_generating(provider_state: str | None, percent: int | None, seconds: int) -> str:
    """A video job's progress: where the provider has it (its queue, generating) and the
    time since it started; the percentage where the provider tells one."""
    state = (provider_state or "").strip().lower()
    if state in QUEUE_STATES:
        text = _("🎬 Your video is waiting in the queue… {elapsed}")
    elif state == "generating":
        text = _("🎬 Your video is being generated… {elapsed}")
    else:
        text = _("🎬 Creating your video… {elapsed}")
    text = text.format(elapsed=elapsed(seconds))
    return f"{text} · {percent}%" if percent is not None else text


def still_generating() -> str:
    return _("⏳ Your previous image is still being generated. Wait for it or cancel it.")


def cancelled() -> str:
    return _("✖️ Generation cancelled.")


def nothing_to_cancel() -> str:
    return _("You have no generation in progress.")


def draft_expired() -> str:
    return _("This request has expired. Press Generate to start again.")


def draft_invalid() -> str:
    return _("This model or mode is no longer available. Please choose again.")


def failure(job: Job) -> str:
    error = ErrorClass(job.error_class) if job.error_class else ErrorClass.INTERNAL
    if error is ErrorClass.SAFETY:
        text = _("🚫 The model's safety filter declined this request. Try rephrasing it.")
        if job.user_error:
            text += "\n" + _("Reason: {reason}").format(reason=escape(job.user_error))
        return text
    if error is ErrorClass.UNAVAILABLE:
        return _("⚠️ This model is temporarily unavailable. Please try another model or later.")
    # What the provider named (ProviderError.user_code), in the user's language.
    if job.user_error == "image_fetch":
        return _("⚠️ The service could not fetch your photo. Please send it again and retry.")
    if job.user_error == "generation_failed":
        return _("😔 The service could not generate this. Try again, perhaps with another prompt.")
    if job.user_error == "result_expired":
        return _("⌛ The finished result expired at the service before it could be fetched.")
    if job.user_error == "invalid_request":
        return _("⚠️ The service could not accept this request. Try a different prompt or photo.")
    if error is ErrorClass.INVALID_INPUT:
        return _("⚠️ The model could not process this request. Try a different prompt or settings.")
    if error is ErrorClass.TIMEOUT:
        return _("⌛ The generation took too long and was stopped. Please try again.")
    return _("😔 The generation failed. Please try again.")


def reference_added(count: int, limit: int) -> str:
    return _("🖼 Reference image added ({count} of {limit}).").format(count=count, limit=limit)


def reference_problem(reason: str, limit: int) -> str:
    if reason == "size":
        return _("That image is larger than 10 MB. Please send a smaller one.")
    if reason == "dimensions":
        side = VIDEO_PHOTO_MIN_SIDE  # what GenerationService.add_reference checks
        return _(
            "That photo is too small for a video: each side must be at least {pixels} pixel. "
            "Please send a larger one.",
            "That photo is too small for a video: each side must be at least {pixels} pixels. "
            "Please send a larger one.",
            side,
        ).format(pixels=side)
    if reason == "missing":  # confirmed without the photo an image-to-video model needs
        return photo_required()
    if reason == "aspect":
        return _(
            "That photo is too narrow or too tall for a video: one side may be at most 2.5 "
            "times the other. Please crop it or send another one."
        )
    if reason == "count":
        if limit == 0:
            return _("This model does not take reference images.")
        return _(
            "This model takes at most {limit} reference image.",
            "This model takes at most {limit} reference images.",
            limit,
        ).format(limit=limit)
    return _("Please send a JPEG, PNG or WebP image.")


def reference_unreadable() -> str:
    """Telegram could not give us the file (gone, too big to download, network trouble)."""
    return _("I couldn't read that file, please send it again.")


def result_caption(job: Job, model_name: str, mode_title: str, is_demo: bool) -> str:
    head = f"🎨 <b>{escape(model_name)}</b> · {escape(mode_title)}"
    budget = CAPTION_LIMIT - len(head) - 120
    prompt = job.prompt if len(job.prompt) <= budget else job.prompt[: budget - 1] + "…"
    caption = f"{head}\n{escape(prompt)}"
    if is_demo:
        caption += "\n" + demo_notice()
    return caption


def originals() -> str:
    return _("📎 Original files")


def video_link(url: str, expires_at: datetime, days: int) -> str:
    """A video over Telegram's upload limit: a download link instead of the file."""
    until = expires_at.astimezone(UTC) if expires_at.tzinfo else expires_at
    return _(
        "📦 The video is larger than 50 MB, too big to send in Telegram. "
        '<a href="{url}">Download it here</a>: the link works for {days} day, until {date}.',
        "📦 The video is larger than 50 MB, too big to send in Telegram. "
        '<a href="{url}">Download it here</a>: the link works for {days} days, until {date}.',
        days,
    ).format(url=escape(url, quote=True), days=days, date=f"{until:%Y-%m-%d %H:%M} UTC")


def video_too_large() -> str:
    """A video over Telegram's upload limit, and no download link to offer."""
    return _(
        "📦 The video is larger than 50 MB, too big to send in Telegram. It is kept "
        "with your generations: open /history to find it."
    )


def history(jobs: Sequence[Job], titles: dict[str, str]) -> str:
    if not jobs:
        return _("You have not generated anything yet.")
    lines = [_("🕘 <b>Your recent generations</b>"), ""]
    for job in jobs:
        prompt = job.prompt if len(job.prompt) <= 60 else job.prompt[:59] + "…"
        lines.append(
            f"<b>#{job.id}</b> · {job.created_at:%Y-%m-%d %H:%M} · "
            f"{escape(titles.get(job.mode, job.mode))} · {job_status(job.status)}\n"
            f"<i>{escape(prompt)}</i>"
        )
    return "\n".join(lines)


def job_status(status: str) -> str:
    names = {
        JobStatus.QUEUED.value: _("queued"),
        JobStatus.RUNNING.value: _("in progress"),
        JobStatus.SUCCEEDED.value: _("done"),
        JobStatus.FAILED.value: _("failed"),
        JobStatus.CANCELLED.value: _("cancelled"),
    }
    return names.get(status, status)


def job_not_found() -> str:
    return _("That generation is no longer available.")


def no_reference_model() -> str:
    return _("None of the available models takes reference images.")
