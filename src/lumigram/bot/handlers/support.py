"""/paysupport, /terms, the Support button, and /refund requests."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from lumigram.bot import keyboards_money, render_money
from lumigram.bot.callbacks import MenuAction, MenuCallback, MoneyAction, MoneyCallback
from lumigram.bot.messages import edit_or_send
from lumigram.bot.states import RefundForm
from lumigram.container import Services
from lumigram.domain.users import User

REFUND_JOB = "refund_job_id"


def contact_url(contact: str) -> str | None:
    """A button link for the operator's contact, when it is one Telegram can open."""
    contact = contact.strip()
    if contact.startswith("@") and len(contact) > 1:
        return f"https://t.me/{contact[1:]}"
    if contact.startswith(("https://", "http://")):
        return contact
    return None


async def paysupport(message: Message, services: Services) -> None:
    contact = services.infra.settings.support_contact
    await message.answer(
        render_money.paysupport(contact), reply_markup=keyboards_money.support(contact_url(contact))
    )


async def support_button(callback: CallbackQuery, services: Services) -> None:
    contact = services.infra.settings.support_contact
    await edit_or_send(
        callback, render_money.paysupport(contact), keyboards_money.support(contact_url(contact))
    )


async def terms(message: Message) -> None:
    await message.answer(render_money.terms())


async def refund_command(
    message: Message, services: Services, user: User, state: FSMContext
) -> None:
    await state.clear()
    items = await services.refunds.refundable(user.id)
    if not items:
        await message.answer(render_money.refund_none())
        return
    await message.answer(render_money.refund_pick(), reply_markup=keyboards_money.refundable(items))


async def refund_pick(
    callback: CallbackQuery,
    callback_data: MoneyCallback,
    services: Services,
    user: User,
    state: FSMContext,
) -> None:
    if not callback_data.value.isdigit():
        await callback.answer(render_money.refund_not_possible(), show_alert=True)
        return
    job_id = int(callback_data.value)
    items = await services.refunds.refundable(user.id, limit=50)
    if job_id not in {item.job.id for item in items}:
        await callback.answer(render_money.refund_not_possible(), show_alert=True)
        return
    await state.set_state(RefundForm.reason)
    await state.update_data({REFUND_JOB: job_id})
    await edit_or_send(callback, render_money.refund_reason())


async def refund_reason(
    message: Message, services: Services, user: User, state: FSMContext
) -> None:
    job_id = (await state.get_data()).get(REFUND_JOB)
    await state.clear()
    request = None
    if isinstance(job_id, int):
        request = await services.refunds.request(user.id, job_id, message.text or "")
    if request is None or request.id is None:
        await message.answer(render_money.refund_not_possible())
        return
    await message.answer(render_money.refund_stored(request.id))


async def refund_reason_not_text(message: Message) -> None:
    await message.answer(render_money.refund_reason())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(paysupport, Command("paysupport", "support"))
    router.callback_query.register(
        support_button, MenuCallback.filter(F.action == MenuAction.SUPPORT)
    )
    router.message.register(terms, Command("terms"))
    router.message.register(refund_command, Command("refund"))
    router.callback_query.register(
        refund_pick, MoneyCallback.filter(F.action == MoneyAction.REFUND_JOB)
    )
    router.message.register(refund_reason, RefundForm.reason, F.text, ~F.text.startswith("/"))
    router.message.register(refund_reason_not_text, RefundForm.reason, ~F.text)
    return router
