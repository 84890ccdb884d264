"""Telegram's side of money: Stars calls, and messages the user did not ask for.

``TelegramStars`` implements ``services.ports.StarsGateway`` and
``TelegramMoneyNotifier`` implements ``services.ports.MoneyNotifier``. Texts are
translated with the user's stored language; a blocked bot never fails the caller.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import LabeledPrice, StarTransaction, TransactionPartnerUser
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.bot import render_money
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.domain.money import Account
from lumigram.domain.stars import Direction
from lumigram.domain.stars import StarTransaction as Transaction
from lumigram.domain.subscriptions import SUBSCRIPTION_PERIOD, Subscription, Tier
from lumigram.services.ledger import Ledger
from lumigram.services.payments import STARS, Recorded
from lumigram.services.ports import StarsRefusedError

log = logging.getLogger(__name__)
ALREADY_DONE = ("CHARGE_ALREADY_REFUNDED",)


class TelegramStars:
    def __init__(self, bot: Bot, i18n: I18n) -> None:
        self._bot = bot
        self._i18n = i18n

    async def refund(self, user_id: int, charge_id: str) -> None:
        try:
            await self._bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=charge_id
            )
        except TelegramBadRequest as error:
            done = any(code in error.message for code in ALREADY_DONE)
            raise StarsRefusedError(error.message, already_done=done) from None

    async def set_subscription_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None:
        try:
            await self._bot.edit_user_star_subscription(
                user_id=user_id, telegram_payment_charge_id=charge_id, is_canceled=canceled
            )
        except TelegramBadRequest as error:
            raise StarsRefusedError(error.message) from None

    async def subscription_link(self, tier: Tier, payload: str, language: str) -> str:
        with self._i18n.context(), self._i18n.use_locale(language):
            description = render_money.subscription_invoice_description(tier)
        return await self._bot.create_invoice_link(
            title=tier.name,
            description=description,
            payload=payload,
            currency=STARS,
            prices=[LabeledPrice(label=tier.name, amount=tier.stars)],
            subscription_period=int(SUBSCRIPTION_PERIOD.total_seconds()),
        )

    async def transactions(self, offset: int, limit: int) -> list[Transaction]:
        answer = await self._bot.get_star_transactions(offset=offset, limit=limit)
        return [_transaction(item) for item in answer.transactions]


def _transaction(item: StarTransaction) -> Transaction:
    """Telegram's StarTransaction in the reconciliation's terms."""
    incoming = item.source is not None
    partner = item.source if incoming else item.receiver
    direction = Direction.IN if incoming else Direction.OUT
    if not isinstance(partner, TransactionPartnerUser):
        kind = str(getattr(partner, "type", "unknown"))
        return Transaction(item.id, item.amount, item.date, direction, kind)
    return Transaction(
        id=item.id,
        amount=item.amount,
        date=item.date,
        direction=direction,
        partner=f"{partner.type}/{partner.transaction_type}",
        user_id=partner.user.id,
        first_name=partner.user.first_name,
        username=partner.user.username,
        language_code=partner.user.language_code,
        invoice_payload=partner.invoice_payload,
        subscription_period=partner.subscription_period,
    )


class TelegramMoneyNotifier:
    def __init__(
        self, bot: Bot, i18n: I18n, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self._bot = bot
        self._i18n = i18n
        self._sessionmaker = sessionmaker

    async def _language(self, user_id: int) -> str:
        async with self._sessionmaker() as session:
            user = await UserRepository(session).get(user_id)
        return user.language if user else self._i18n.default_locale

    @contextlib.contextmanager
    def _locale(self, language: str) -> Iterator[None]:
        with self._i18n.context(), self._i18n.use_locale(language):
            yield

    async def _send(self, user_id: int, text: str) -> None:
        try:
            await self._bot.send_message(user_id, text)
        except TelegramAPIError as error:
            log.info("could not tell user %s about money: %s", user_id, error)

    async def refunded(self, user_id: int, stars: int, job_id: int | None) -> None:
        with self._locale(await self._language(user_id)):
            text = render_money.refunded(stars)
        await self._send(user_id, text)

    async def payment_received(self, recorded: Recorded) -> None:
        user_id = recorded.payment.user_id
        async with self._sessionmaker() as session:
            balances = await Ledger(LedgerRepository(session)).balances(user_id)
        with self._locale(await self._language(user_id)):
            text = render_money.payment_outcome(recorded, balances[Account.CREDITS.value])
        if text:
            await self._send(user_id, text)

    async def subscription_expiring(self, subscription: Subscription, tier: Tier | None) -> None:
        with self._locale(await self._language(subscription.user_id)):
            text = render_money.subscription_expiring(subscription, tier)
        await self._send(subscription.user_id, text)

    async def subscription_ended(self, subscription: Subscription, tier: Tier | None) -> None:
        with self._locale(await self._language(subscription.user_id)):
            text = render_money.subscription_ended(subscription, tier)
        await self._send(subscription.user_id, text)

    async def allowance_used_up(self, subscription: Subscription, tier: Tier | None) -> None:
        with self._locale(await self._language(subscription.user_id)):
            text = render_money.allowance_used_up(subscription, tier)
        await self._send(subscription.user_id, text)
