"""Inline keyboards of the money screens."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from lumigram.bot import render_money
from lumigram.bot.callbacks import MenuAction, MenuCallback, MoneyAction, MoneyCallback
from lumigram.domain.money import Package
from lumigram.services.refunds import Refundable


def _back(builder: InlineKeyboardBuilder) -> None:
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action=MenuAction.MAIN))


def _offers(builder: InlineKeyboardBuilder) -> None:
    builder.button(text=_("⭐ Top up"), callback_data=MenuCallback(action=MenuAction.TOP_UP))
    builder.button(
        text=_("💎 Subscription"), callback_data=MenuCallback(action=MenuAction.SUBSCRIPTION)
    )


def back() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _back(builder)
    return builder.as_markup()


def profile() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _offers(builder)
    builder.button(
        text=_("🎁 Invite friends"), callback_data=MenuCallback(action=MenuAction.REFERRALS)
    )
    builder.button(text=_("🆘 Support"), callback_data=MenuCallback(action=MenuAction.SUPPORT))
    _back(builder)
    builder.adjust(2, 2, 1)
    return builder.as_markup()


def packages(items: tuple[Package, ...]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for package in items:
        builder.button(
            text=render_money.package_button(package),
            callback_data=MoneyCallback(action=MoneyAction.PACKAGE, value=package.id),
        )
    _back(builder)
    builder.adjust(1)
    return builder.as_markup()


def awaiting_payment() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _offers(builder)
    builder.button(
        text=_("✖️ Cancel"), callback_data=MoneyCallback(action=MoneyAction.CANCEL_UNPAID)
    )
    builder.adjust(2, 1)
    return builder.as_markup()


def subscription(
    links: list[tuple[str, str]], *, active: bool, renews: bool
) -> InlineKeyboardMarkup:
    """``links``: (label, invoice link) per tier on sale."""
    builder = InlineKeyboardBuilder()
    if active:
        if renews:
            builder.button(
                text=_("Cancel renewal"),
                callback_data=MoneyCallback(action=MoneyAction.RENEWAL_CANCEL),
            )
        else:
            builder.button(
                text=_("Resume renewal"),
                callback_data=MoneyCallback(action=MoneyAction.RENEWAL_RESUME),
            )
    else:
        for label, url in links:
            builder.button(text=label, url=url)
    _back(builder)
    builder.adjust(1)
    return builder.as_markup()


def support(contact_url: str | None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if contact_url:
        builder.button(text=_("✉️ Write to support"), url=contact_url)
    _back(builder)
    builder.adjust(1)
    return builder.as_markup()


def refundable(items: list[Refundable]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for item in items:
        when = render_money.date(item.job.created_at)
        cost = render_money.paid_amount(item.account, item.amount)
        prompt = item.job.prompt[:24] + ("…" if len(item.job.prompt) > 24 else "")
        builder.button(
            text=f"#{item.job.id} · {when} · {cost} · {prompt}",
            callback_data=MoneyCallback(action=MoneyAction.REFUND_JOB, value=str(item.job.id)),
        )
    _back(builder)
    builder.adjust(1)
    return builder.as_markup()
