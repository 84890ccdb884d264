"""Jobs after they are queued: cancel, history, re-send, and the buttons under results."""

from __future__ import annotations

from dataclasses import replace

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from lumigram.bot import keyboards, render
from lumigram.bot.callbacks import JobAction, JobCallback, MenuAction, MenuCallback
from lumigram.bot.handlers.generate import DRAFT, queue_job
from lumigram.bot.messages import edit_or_send
from lumigram.bot.notifier import TelegramNotifier
from lumigram.bot.states import GenerateForm
from lumigram.container import Services
from lumigram.domain.users import User
from lumigram.services.generation import Draft


async def cancel_command(
    message: Message, services: Services, user: User, notifier: TelegramNotifier
) -> None:
    # The use case tells the job's channel: here, the status message says "cancelled"
    # (or a new message does, if there is none).
    if await services.generation.cancel(user.id) is None:
        await message.answer(render.nothing_to_cancel())


async def cancel_button(
    callback: CallbackQuery,
    callback_data: JobCallback,
    services: Services,
    user: User,
    notifier: TelegramNotifier,
) -> None:
    job = await services.generation.cancel(user.id, callback_data.job_id)
    if job is None:
        await callback.answer(render.nothing_to_cancel(), show_alert=True)
        return
    await callback.answer(render.cancelled())


async def history_command(message: Message, services: Services, user: User) -> None:
    text, markup = await _history(services, user)
    await message.answer(text, reply_markup=markup)


async def history_button(callback: CallbackQuery, services: Services, user: User) -> None:
    text, markup = await _history(services, user)
    await edit_or_send(callback, text, markup)


async def _history(services: Services, user: User) -> tuple[str, InlineKeyboardMarkup]:
    jobs = await services.generation.history(user.id)
    templates = await services.generation.templates()
    titles = {t.slug: t.title(user.language) for t in templates}
    return render.history(jobs, titles), keyboards.history(jobs)


async def resend(
    callback: CallbackQuery,
    callback_data: JobCallback,
    services: Services,
    user: User,
    notifier: TelegramNotifier,
) -> None:
    job = await services.generation.delivered(user.id, callback_data.job_id)
    if job is None or callback.message is None:
        await callback.answer(render.job_not_found(), show_alert=True)
        return
    await callback.answer()
    await notifier.resend(job, callback.message.chat.id)


async def regenerate(
    callback: CallbackQuery,
    callback_data: JobCallback,
    services: Services,
    user: User,
    notifier: TelegramNotifier,
) -> None:
    generation = services.generation
    job = await generation.job_of(user.id, callback_data.job_id)
    if job is None or not isinstance(callback.message, Message):
        await callback.answer(render.job_not_found(), show_alert=True)
        return
    await callback.answer()
    await queue_job(
        callback.message,
        services,
        user,
        generation.draft_from(job, new_seed=True),
        notifier,
        edit=False,
    )


async def change_prompt(
    callback: CallbackQuery,
    callback_data: JobCallback,
    state: FSMContext,
    services: Services,
    user: User,
) -> None:
    generation = services.generation
    job = await generation.job_of(user.id, callback_data.job_id)
    model = generation.model(job.model_id) if job else None
    if job is None or model is None or not isinstance(callback.message, Message):
        await callback.answer(render.job_not_found(), show_alert=True)
        return
    draft = generation.draft_from(job, new_seed=True)
    await _ask_prompt(callback, state, services, user, draft)


async def use_as_reference(
    callback: CallbackQuery,
    callback_data: JobCallback,
    state: FSMContext,
    services: Services,
    user: User,
) -> None:
    generation = services.generation
    job = await generation.job_of(user.id, callback_data.job_id)
    key = await generation.reference_from_result(user.id, callback_data.job_id, 0)
    if job is None or key is None:
        await callback.answer(render.job_not_found(), show_alert=True)
        return
    model = generation.reference_model(job.model_id)
    if model is None:
        await callback.answer(render.no_reference_model(), show_alert=True)
        return
    draft = Draft(model_id=model.id, template_slug=job.mode, reference_keys=(key,))
    await _ask_prompt(callback, state, services, user, draft)


async def _ask_prompt(
    callback: CallbackQuery, state: FSMContext, services: Services, user: User, draft: Draft
) -> None:
    generation = services.generation
    model = generation.model(draft.model_id)
    templates = {t.slug: t for t in await generation.templates()}
    template = templates.get(draft.template_slug)
    if model is None or template is None or not isinstance(callback.message, Message):
        await callback.answer(render.draft_invalid(), show_alert=True)
        return
    await state.set_state(GenerateForm.prompt)
    await state.set_data({DRAFT: replace(draft, prompt="").to_state()})
    await callback.answer()
    await callback.message.answer(
        render.ask_prompt(
            model, template.title(user.language), generation.policy.max_prompt_length
        ),
        reply_markup=keyboards.prompt_input(),
    )


def create_router() -> Router:
    router = Router(name=__name__)
    job = JobCallback.filter
    router.message.register(cancel_command, Command("cancel"))
    router.message.register(history_command, Command("history"))
    router.callback_query.register(
        history_button, MenuCallback.filter(F.action == MenuAction.HISTORY)
    )
    router.callback_query.register(cancel_button, job(F.action == JobAction.CANCEL))
    router.callback_query.register(resend, job(F.action == JobAction.RESEND))
    router.callback_query.register(regenerate, job(F.action == JobAction.REGENERATE))
    router.callback_query.register(change_prompt, job(F.action == JobAction.CHANGE_PROMPT))
    router.callback_query.register(use_as_reference, job(F.action == JobAction.USE_AS_REFERENCE))
    return router
