"""The generation conversation: model -> mode -> prompt -> (references, settings) -> confirm.

A model that animates a photo (image-to-video, ``min_reference_images`` > 0) asks for
the photo right after the prompt, and its request cannot be confirmed without it.

Navigation edits one screen message; the draft is kept in the FSM data and is
only turned into a job (by GenerationService.queue) on confirmation.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from dataclasses import replace
from typing import Any

import aiohttp
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    TelegramObject,
)

from lumigram.bot import keyboards, keyboards_money, render, render_money
from lumigram.bot.callbacks import GenerateCallback, GenerateStep, MoneyAction, MoneyCallback
from lumigram.bot.handlers.account import send_terms_if_first
from lumigram.bot.messages import edit_or_send
from lumigram.bot.notifier import TelegramNotifier
from lumigram.bot.states import GenerateForm
from lumigram.catalog import ModelSpec
from lumigram.catalog.loader import MAX_SEED
from lumigram.container import Services
from lumigram.domain.jobs import Channel, Origin
from lumigram.domain.prompts import PromptError, PromptProblem
from lumigram.domain.users import User
from lumigram.services.generation import (
    MAX_REFERENCE_BYTES,
    REFERENCE_TYPES,
    ActiveJobLimitError,
    Draft,
    DraftError,
    GenerationService,
    InvalidReferenceError,
    PerkRequiredError,
    Queued,
)
from lumigram.services.payments import STARS

DRAFT = "draft"
SCREEN = "screen"  # id of the message the conversation edits

log = logging.getLogger(__name__)


async def load_draft(state: FSMContext) -> Draft | None:
    data = await state.get_data()
    return Draft.from_state(data[DRAFT]) if DRAFT in data else None


async def has_draft(_: TelegramObject, state: FSMContext) -> dict[str, Draft] | bool:
    """Filter: the conversation has a draft, handed to the handler as ``draft``.

    Without one (a restart lost the conversation, an old button) the update falls
    through to the fallback router, which says the button is no longer valid.
    """
    draft = await load_draft(state)
    return {"draft": draft} if draft is not None else False


async def save_draft(state: FSMContext, draft: Draft) -> None:
    await state.update_data({DRAFT: draft.to_state()})


# --- entry and choices -----------------------------------------------------------


async def new_draft(state: FSMContext, generation: GenerationService) -> Draft:
    """A fresh draft with the default model preselected."""
    draft = Draft(model_id=generation.default_model().id, template_slug="")
    await state.set_state(GenerateForm.choosing)
    await state.set_data({DRAFT: draft.to_state()})
    return draft


async def start_command(
    message: Message, state: FSMContext, services: Services, user: User
) -> None:
    generation = services.generation
    draft = await new_draft(state, generation)
    text, markup = await model_list(generation, draft, user)
    sent = await message.answer(text, reply_markup=markup)
    await state.update_data({SCREEN: sent.message_id})


async def start_button(
    callback: CallbackQuery, state: FSMContext, services: Services, user: User
) -> None:
    draft = await new_draft(state, services.generation)
    await show_models(callback, services.generation, draft, user)


async def show_models(
    callback: CallbackQuery, generation: GenerationService, draft: Draft, user: User
) -> None:
    await edit_or_send(callback, *await model_list(generation, draft, user))


async def model_list(
    generation: GenerationService, draft: Draft, user: User
) -> tuple[str, InlineKeyboardMarkup]:
    """The model picker; premium models are marked, and explained when the user's plan
    does not include them."""
    models = generation.models()
    locked = False
    if any(model.premium for model in models):
        locked = not (await generation.perks(user.id)).allows_model(premium=True)
    unlocking = generation.premium_tiers() if locked else None
    return (
        render.choose_model(models, user.language, unlocking),
        keyboards.models(models, draft.model_id, premium_locked=locked),
    )


async def pick_model(
    callback: CallbackQuery,
    draft: Draft,
    callback_data: GenerateCallback,
    state: FSMContext,
    services: Services,
    user: User,
) -> None:
    model = services.generation.model(callback_data.value)
    if model is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    access = await services.generation.model_access(user.id, model)
    if not access.allowed:  # explained now, before the prompt (queue checks it again)
        await edit_or_send(
            callback,
            render.premium_locked(model, access.unlocking_tiers),
            keyboards.premium_locked(can_subscribe=bool(access.unlocking_tiers)),
        )
        return
    if model.id != draft.model_id:  # another model: its own defaults
        draft = Draft(model_id=model.id, template_slug=draft.template_slug, prompt=draft.prompt)
    await save_draft(state, draft)
    await show_modes(callback, state, services, user, model)


async def show_modes(
    callback: CallbackQuery, state: FSMContext, services: Services, user: User, model: ModelSpec
) -> None:
    await state.set_state(GenerateForm.choosing)
    templates = await services.generation.templates()
    await edit_or_send(
        callback, render.choose_mode(model), keyboards.modes(templates, user.language)
    )


async def back_to_models(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services, user: User
) -> None:
    await state.set_state(GenerateForm.choosing)
    await show_models(callback, services.generation, draft, user)


async def pick_mode(
    callback: CallbackQuery,
    draft: Draft,
    callback_data: GenerateCallback,
    state: FSMContext,
    services: Services,
    user: User,
) -> None:
    model = services.generation.model(draft.model_id)
    templates = {t.slug: t for t in await services.generation.templates()}
    template = templates.get(callback_data.value)
    if model is None or template is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    draft = replace(draft, template_slug=template.slug)
    await save_draft(state, draft)
    await state.set_state(GenerateForm.prompt)
    await edit_or_send(
        callback,
        render.ask_prompt(
            model, template.title(user.language), services.generation.policy.max_prompt_length
        ),
        keyboards.prompt_input(),
    )


async def back_to_modes(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services, user: User
) -> None:
    model = services.generation.model(draft.model_id)
    if model is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    await show_modes(callback, state, services, user, model)


# --- the prompt and references ------------------------------------------------------


async def receive_prompt(
    message: Message, draft: Draft, state: FSMContext, services: Services, user: User, bot: Bot
) -> None:
    try:
        prompt = services.generation.clean_prompt(message.text)
    except PromptError as error:
        await message.answer(render.prompt_problem(error, len(message.text or "")))
        return  # same state: a second chance
    draft = replace(draft, prompt=prompt)
    await save_draft(state, draft)
    await state.set_state(GenerateForm.summary)  # photos are taken there too
    model = services.generation.model(draft.model_id)
    if model is not None and draft.missing_photos(model):
        await send_screen(message, state, bot, render.ask_photo(model), keyboards.photo_input())
        return
    await send_summary(message, state, services, user, bot, draft)


async def receive_reference(
    message: Message, draft: Draft, state: FSMContext, services: Services, user: User, bot: Bot
) -> None:
    generation = services.generation
    model = generation.model(draft.model_id)
    limit = model.capabilities.max_reference_images if model else 0
    try:
        data = await download_image(message, bot)
        key = await generation.add_reference(
            user.id, data, draft.model_id, len(draft.reference_keys)
        )
    except InvalidReferenceError as error:
        await message.answer(render.reference_problem(error.reason, limit))
        return
    except UnreadableFileError as error:
        log.warning("user %s: reference file not downloaded: %s", user.id, error)
        await message.answer(render.reference_unreadable())
        return  # same state: the user sends it again
    draft = replace(draft, reference_keys=(*draft.reference_keys, key))
    await save_draft(state, draft)
    await message.answer(render.reference_added(len(draft.reference_keys), limit))
    if message.caption and not draft.prompt:  # a photo with a caption: the caption is the prompt
        try:
            draft = replace(draft, prompt=generation.clean_prompt(message.caption))
        except PromptError as error:
            await message.answer(render.prompt_problem(error, len(message.caption)))
            return
        await save_draft(state, draft)
    if draft.prompt:
        await state.set_state(GenerateForm.summary)
        await send_summary(message, state, services, user, bot, draft)


class UnreadableFileError(Exception):
    """Telegram could not give us the file: getFile refused it (gone, too big, wrong
    file_id) or the download failed (an HTTP error, the network)."""


def _download_problem(error: BaseException) -> str:
    """A one-line reason for the log (never the download URL: it carries the token)."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"file download answered HTTP {error.status}"
    if isinstance(error, TelegramAPIError):
        return f"{type(error).__name__}: {error.message}"
    return f"{type(error).__name__} while downloading"


async def download_image(message: Message, bot: Bot) -> bytes:
    """The bytes of a photo or an image document (InvalidReferenceError for anything else,
    UnreadableFileError when Telegram cannot give us the file).

    The size Telegram declares is checked before downloading; the service checks
    the bytes themselves.
    """
    if message.photo:
        file_id, size = message.photo[-1].file_id, message.photo[-1].file_size
    elif message.document and (message.document.mime_type or "") in REFERENCE_TYPES:
        file_id, size = message.document.file_id, message.document.file_size
    else:
        raise InvalidReferenceError("type")
    if size is not None and size > MAX_REFERENCE_BYTES:
        raise InvalidReferenceError("size")
    buffer = io.BytesIO()
    try:
        await bot.download(file_id, destination=buffer)
    except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as error:
        raise UnreadableFileError(_download_problem(error)) from None
    return buffer.getvalue()


async def not_a_prompt(message: Message) -> None:
    await message.answer(render.prompt_problem(PromptError(PromptProblem.EMPTY, 0), 0))


# --- the summary (confirmation) screen ----------------------------------------------


async def send_summary(
    message: Message, state: FSMContext, services: Services, user: User, bot: Bot, draft: Draft
) -> None:
    """A fresh summary at the bottom of the chat; the previous screen is removed."""
    rendered = await render_summary(services.generation, draft, user)
    if rendered is None:
        await state.clear()
        await message.answer(render.draft_invalid())
        return
    await send_screen(message, state, bot, *rendered)


async def send_screen(
    message: Message, state: FSMContext, bot: Bot, text: str, markup: InlineKeyboardMarkup
) -> None:
    """A fresh screen of the conversation at the bottom of the chat; the previous one
    is removed."""
    previous = (await state.get_data()).get(SCREEN)
    sent = await message.answer(text, reply_markup=markup)
    await state.update_data({SCREEN: sent.message_id})
    if previous:
        with contextlib.suppress(TelegramAPIError):
            await bot.delete_message(message.chat.id, previous)


async def render_summary(
    generation: GenerationService, draft: Draft, user: User
) -> tuple[str, InlineKeyboardMarkup] | None:
    try:
        quote = await generation.quote(draft)
    except DraftError:
        return None
    funding, left = await generation.funding_preview(user.id, quote)
    price_line = render_money.funding_line(funding, left, quote.price, quote.stars)
    return (
        render.summary(quote, draft, user.language, price_line),
        keyboards.summary(quote, len(draft.reference_keys), funding, paid=funding is not None),
    )


async def show_summary(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services, user: User
) -> None:
    rendered = await render_summary(services.generation, draft, user)
    if rendered is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    await state.set_state(GenerateForm.summary)
    await edit_or_send(callback, *rendered)


async def edit_prompt(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services, user: User
) -> None:
    model = services.generation.model(draft.model_id)
    if model is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    templates = {t.slug: t for t in await services.generation.templates()}
    template = templates.get(draft.template_slug)
    title = template.title(user.language) if template else draft.template_slug
    await state.set_state(GenerateForm.prompt)
    await edit_or_send(
        callback,
        render.ask_prompt(model, title, services.generation.policy.max_prompt_length),
        keyboards.prompt_input(),
    )


async def clear_references(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services, user: User
) -> None:
    await save_draft(state, replace(draft, reference_keys=()))
    await show_summary(callback, replace(draft, reference_keys=()), state, services, user)


async def cancel_draft(callback: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await edit_or_send(callback, render.menu(), keyboards.main_menu())


# --- settings --------------------------------------------------------------------------


async def show_settings(
    callback: CallbackQuery, draft: Draft, state: FSMContext, services: Services
) -> None:
    try:
        quote = await services.generation.quote(draft)
    except DraftError:
        quote = None
    if quote is None:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    await state.set_state(GenerateForm.summary)
    await edit_or_send(callback, render.settings_screen(), keyboards.settings(quote))


async def open_setting(
    callback: CallbackQuery,
    draft: Draft,
    callback_data: GenerateCallback,
    state: FSMContext,
    services: Services,
) -> None:
    try:
        quote = await services.generation.quote(draft)
    except DraftError:
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    caps, setting = quote.model.capabilities, callback_data.value
    choices: dict[str, list[str]] = {
        "aspect_ratio": list(caps.aspect_ratios),
        "output_format": list(caps.output_formats),
        "num_outputs": [str(n) for n in range(1, caps.max_outputs + 1)],
    }
    if len(caps.durations) > 1:  # videos: seconds and resolution, where there is a choice
        choices["duration_seconds"] = [str(seconds) for seconds in caps.durations]
    if len(caps.resolutions) > 1:
        choices["resolution"] = list(caps.resolutions)
    if setting in choices:
        current = str(quote.settings.get(setting, ""))
        await edit_or_send(
            callback,
            render.choose_value(setting),
            keyboards.setting_choices(setting, choices[setting], current),
        )
    elif setting == "seed" and caps.seed:
        await state.set_state(GenerateForm.seed)
        await edit_or_send(callback, render.ask_seed(MAX_SEED), keyboards.text_setting("seed"))
    elif setting == "negative_prompt" and caps.negative_prompt:
        await state.set_state(GenerateForm.negative)
        await edit_or_send(
            callback, render.ask_negative_prompt(), keyboards.text_setting("negative_prompt")
        )
    else:
        await callback.answer(render.stale_button(), show_alert=True)


def parse_setting(raw: str) -> tuple[str, Any] | None:
    """``name=value`` from a button into a typed setting; None if malformed."""
    name, _, value = raw.partition("=")
    if name == "aspect_ratio" and re.fullmatch(r"\d+x\d+", value):
        value = value.replace("x", ":")  # see keyboards.setting_choices
    if name in ("aspect_ratio", "output_format", "resolution"):
        return (name, value) if value else None
    if name in ("num_outputs", "duration_seconds"):
        return (name, int(value)) if value.isdigit() else None
    if name == "prompt_upsampling":
        return (name, value == "on") if value in ("on", "off") else None
    if name in ("seed", "negative_prompt"):
        return (name, None) if value == "" else None  # Random / Clear
    return None


async def set_setting(
    callback: CallbackQuery,
    draft: Draft,
    callback_data: GenerateCallback,
    state: FSMContext,
    services: Services,
) -> None:
    parsed = parse_setting(callback_data.value)
    if parsed is None:
        await callback.answer(render.stale_button(), show_alert=True)
        return
    name, value = parsed
    updated = await apply_setting(state, services, draft, name, value)
    if updated is None:
        await callback.answer(render.stale_button(), show_alert=True)
        return
    await show_settings(callback, updated, state, services)


async def apply_setting(
    state: FSMContext, services: Services, draft: Draft, name: str, value: Any
) -> Draft | None:
    """Store one setting if the model accepts it; the new draft, or None if refused."""
    settings = {k: v for k, v in draft.settings.items() if k != name}
    if value is not None:
        settings[name] = value
    candidate = replace(draft, settings=settings)
    try:
        await services.generation.quote(candidate)
    except DraftError:
        return None
    await save_draft(state, candidate)
    return candidate


async def receive_seed(
    message: Message, draft: Draft, state: FSMContext, services: Services, user: User, bot: Bot
) -> None:
    text = (message.text or "").strip()
    if not text.isdigit() or int(text) > MAX_SEED:
        await message.answer(render.bad_seed(MAX_SEED))
        return
    draft = await apply_setting(state, services, draft, "seed", int(text)) or draft
    await state.set_state(GenerateForm.summary)
    await send_summary(message, state, services, user, bot, draft)


async def receive_negative(
    message: Message, draft: Draft, state: FSMContext, services: Services, user: User, bot: Bot
) -> None:
    try:
        negative = services.generation.clean_prompt(message.text)
    except PromptError as error:
        await message.answer(render.prompt_problem(error, len(message.text or "")))
        return
    draft = await apply_setting(state, services, draft, "negative_prompt", negative) or draft
    await state.set_state(GenerateForm.summary)
    await send_summary(message, state, services, user, bot, draft)


# --- confirmation ------------------------------------------------------------------------


async def confirm(
    callback: CallbackQuery,
    draft: Draft,
    state: FSMContext,
    services: Services,
    user: User,
    notifier: TelegramNotifier,
) -> None:
    if not isinstance(callback.message, Message):
        await callback.answer(render.draft_expired(), show_alert=True)
        return
    model = services.generation.model(draft.model_id)
    if model is not None and draft.missing_photos(model):
        await callback.answer(render.photo_required(), show_alert=True)
        return
    started = await queue_job(callback.message, services, user, draft, notifier, edit=True)
    if started:
        await state.clear()
    await callback.answer()


async def queue_job(
    message: Message,
    services: Services,
    user: User,
    draft: Draft,
    notifier: TelegramNotifier,
    *,
    edit: bool,
) -> bool:
    """Confirm ``draft`` (one use case) and show its status message (``message`` edited,
    or a new one).

    The use case hands the job to a worker only once this handler is done (a follow-up
    of the update's scope), so the status message is in place before a worker sees
    the job and progress edits never race with it.
    """
    generation = services.generation
    try:
        queued = await generation.queue(user, draft, telegram_origin(message.chat.id))
    except ActiveJobLimitError as error:
        active_id = error.active[0].id or 0
        await message.answer(
            render.still_generating(), reply_markup=keyboards.cancel_active(active_id)
        )
        return False
    except (DraftError, PromptError):
        await message.answer(render.draft_invalid())
        return False
    except InvalidReferenceError as error:  # image-to-video without its photo
        await message.answer(render.reference_problem(error.reason, 0))
        return False
    except PerkRequiredError as error:
        await message.answer(
            render_money.perk_required(error.perk, error.limit),
            reply_markup=keyboards_money.awaiting_payment(),
        )
        return False
    if queued.awaiting_payment:
        await send_job_invoice(message, services, user, queued, notifier, edit=edit)
        return True
    text = render.queued(queued.position)
    markup = keyboards.job_status(queued.job)
    if edit:
        await message.edit_text(text, reply_markup=markup)
        shown = message.message_id
    else:
        shown = (await message.answer(text, reply_markup=markup)).message_id
    await notifier.messages.remember(queued.job.id or 0, message.chat.id, shown)
    return True


def telegram_origin(chat_id: int) -> Origin:
    return Origin(Channel.TELEGRAM, str(chat_id))


async def send_job_invoice(
    message: Message,
    services: Services,
    user: User,
    queued: Queued,
    notifier: TelegramNotifier,
    *,
    edit: bool,
) -> None:
    """Nothing to pay with: the job waits for a Stars invoice bound to it."""
    job, stars = queued.job, queued.stars_due
    text, markup = render_money.awaiting_payment(stars), keyboards_money.awaiting_payment()
    if edit:
        await message.edit_text(text, reply_markup=markup)
        shown = message.message_id
    else:
        shown = (await message.answer(text, reply_markup=markup)).message_id
    await notifier.messages.remember(job.id or 0, message.chat.id, shown)
    bot = message.bot
    assert bot is not None
    await send_terms_if_first(bot, services, user)
    invoice = services.payments.job_invoice(job, stars)
    model = services.generation.model(job.model_id)
    outputs = int(job.settings.get("num_outputs", 1))
    await bot.send_invoice(
        chat_id=message.chat.id,
        title=render_money.job_invoice_title(),
        description=render_money.job_invoice_description(
            model.name if model else job.model_id, outputs
        ),
        payload=invoice.payload,
        currency=STARS,
        prices=[LabeledPrice(label=render_money.job_invoice_title(), amount=stars)],
    )


async def cancel_unpaid(callback: CallbackQuery, services: Services, user: User) -> None:
    await services.generation.cancel_unpaid(user.id)
    await edit_or_send(callback, render_money.unpaid_cancelled(), keyboards.main_menu())


def create_router() -> Router:
    router = Router(name=__name__)
    gen = GenerateCallback.filter
    router.message.register(start_command, Command("generate"))
    router.callback_query.register(start_button, gen(F.step == GenerateStep.START))
    router.callback_query.register(pick_model, gen(F.step == GenerateStep.MODEL), has_draft)
    router.callback_query.register(
        back_to_models, gen(F.step == GenerateStep.BACK_TO_MODELS), has_draft
    )
    router.callback_query.register(pick_mode, gen(F.step == GenerateStep.MODE), has_draft)
    router.callback_query.register(
        back_to_modes, gen(F.step == GenerateStep.BACK_TO_MODES), has_draft
    )
    router.callback_query.register(show_summary, gen(F.step == GenerateStep.SUMMARY), has_draft)
    router.callback_query.register(edit_prompt, gen(F.step == GenerateStep.EDIT_PROMPT), has_draft)
    router.callback_query.register(
        clear_references, gen(F.step == GenerateStep.CLEAR_REFERENCES), has_draft
    )
    router.callback_query.register(cancel_draft, gen(F.step == GenerateStep.CANCEL))
    router.callback_query.register(show_settings, gen(F.step == GenerateStep.SETTINGS), has_draft)
    router.callback_query.register(open_setting, gen(F.step == GenerateStep.SETTING), has_draft)
    router.callback_query.register(set_setting, gen(F.step == GenerateStep.SET), has_draft)
    router.callback_query.register(confirm, gen(F.step == GenerateStep.CONFIRM), has_draft)
    router.callback_query.register(
        cancel_unpaid, MoneyCallback.filter(F.action == MoneyAction.CANCEL_UNPAID)
    )
    images = F.photo | F.document
    router.message.register(receive_reference, GenerateForm.prompt, images, has_draft)
    router.message.register(receive_reference, GenerateForm.summary, images, has_draft)
    not_command = ~F.text.startswith("/")
    router.message.register(receive_prompt, GenerateForm.prompt, F.text, not_command, has_draft)
    router.message.register(not_a_prompt, GenerateForm.prompt)
    router.message.register(receive_seed, GenerateForm.seed, F.text, not_command, has_draft)
    router.message.register(receive_negative, GenerateForm.negative, F.text, not_command, has_draft)
    return router
