"""Any interleaving of money operations keeps the books straight.

Hypothesis draws a list of operations and runs them, in order, through the real
money services: payments, ledger billing, refunds, subscriptions and the
reconciler. They run against the real database (SQLite, or PostgreSQL with
LUMIGRAM_TEST_DATABASE_URL). The operations include top-ups, Telegram replaying
a payment, generations that are queued, paid by invoice, delivered in part,
failed or cancelled, refunds that Telegram accepts, refuses or says it already
made, subscription payments and updates, time passing, and crashes (a step
rolled back at one of its commits). After every step the test reads the
database and checks the invariants in ``World.check``.

Each example uses three users of its own: a referrer who never spends credits
(so every referral bonus can be reversed in full), a buyer they invited, and a
user with no referrer. The example deletes their rows when it ends, so the
services' global queries (refunds due, open holds, subscriptions to sweep) see
only the example's own data.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.repositories.jobs import JobRepository
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.db.repositories.payments import PaymentRepository
from lumigram.db.repositories.subscriptions import SubscriptionRepository
from lumigram.db.repositories.users import UserRepository
from lumigram.domain.invoices import Product, derive_secret
from lumigram.domain.jobs import ACTIVE_STATUSES, Job, JobStatus
from lumigram.domain.money import (
    MAX_REFUND_ATTEMPTS,
    Account,
    EntryKind,
    HoldStatus,
    Payment,
    PaymentStatus,
    RefundState,
    capture_amount,
    parse_packages,
)
from lumigram.domain.subscriptions import SUBSCRIPTION_PERIOD, Perks, Subscription, Tier
from lumigram.services.billing import LedgerBilling
from lumigram.services.ledger import Ledger, Reference
from lumigram.services.payments import PaymentService, Recorded, ReferralPolicy, Refusal
from lumigram.services.ports import Price, StarsRefusedError
from lumigram.services.reconciler import MoneyReconciler
from lumigram.services.refunds import RefundService
from lumigram.services.subscriptions import RENEWAL_GRACE, SubscriptionService

Sessions = async_sessionmaker[AsyncSession]
START = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = derive_secret("123456789:AAEhBOweik6ad6PsVMRxjeQKj3oXUbuPvXs")
# Small amounts, so credits, trial and allowance run out and invoices happen.
PACKAGES = parse_packages("3:30,10:90")
PERKS = Perks(max_outputs=3, max_active_jobs=5, premium_models=True, priority=1)
FREE = Perks(max_outputs=3, max_active_jobs=5, premium_models=True, priority=0)
TIERS = (Tier("lite", "Lite", 60, 3, PERKS), Tier("plus", "Plus", 150, 8, PERKS))
REFERRAL = ReferralPolicy(percent=50)  # big enough that small purchases earn a bonus
CREDITS_PER_IMAGE = 2
STARS_PER_IMAGE = 20
TRIAL_IMAGES = {1: 1}  # the buyer has one free image; the others none
ACTIVE = {status.value for status in ACTIVE_STATUSES}
ENDED = {JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
MONEY_KINDS = {EntryKind.HOLD.value, EntryKind.CAPTURE.value, EntryKind.RELEASE.value}
# Every ledger key names its cause: "<family>:<charge or job or user id>", and the two
# rows of a transfer (hold, release) end in ":out" and ":in".
KEY = re.compile(
    r"(trial|charge|referral|referral-reversal|refund|refund-undone|subscription"
    r"|allowance-reset|expiry|capture):[^:]+|(hold|release):\d+:(out|in)"
)
B = tables.balances.c
H = tables.holds.c
J = tables.jobs.c
L = tables.ledger_entries.c
P = tables.payments.c
S = tables.subscriptions.c
_user_ids = itertools.count(3_000_000, 3)


def credit_value(stars: int) -> int:
    return stars * PACKAGES[0].credits // PACKAGES[0].stars


# --- test doubles ---------------------------------------------------------------------


class CrashError(Exception):
    """The process died just before this commit."""


class Tx:
    """The services' TransactionManager: commits the session, or crashes at commit ``crash_at``."""

    def __init__(self, session: AsyncSession, crash_at: int | None) -> None:
        self.session = session
        self.crash_at = crash_at
        self.commits = 0
        self.crashed = False

    async def commit(self) -> None:
        self.commits += 1
        if self.crash_at is not None and self.commits >= self.crash_at:
            self.crashed = True
            raise CrashError
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


class FakeStars:
    """Telegram's Stars calls (ports.StarsGateway), as Telegram behaves.

    A charge is refunded at most once: asking again is answered with
    CHARGE_ALREADY_REFUNDED (``already_done``), whatever the mode. Otherwise
    ``mode`` says what happens: "ok"; "refuse" (Telegram says no, nothing is
    refunded); "lost" (Telegram refunds, the answer is lost on the way back);
    "already" (Telegram refunds and the answer says it was done already).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.refunded: dict[str, int] = {}  # charge id -> the user it was refunded to
        self.asked: list[str] = []

    async def refund(self, user_id: int, charge_id: str) -> None:
        self.asked.append(charge_id)
        if charge_id in self.refunded:
            raise StarsRefusedError("CHARGE_ALREADY_REFUNDED", already_done=True)
        if self.mode == "refuse":
            raise StarsRefusedError("REFUND_FAILED")
        self.refunded[charge_id] = user_id
        if self.mode == "lost":
            raise ConnectionError("the answer was lost")
        if self.mode == "already":
            raise StarsRefusedError("CHARGE_ALREADY_REFUNDED", already_done=True)

    async def set_subscription_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None:
        return None

    async def subscription_link(self, tier: Tier, payload: str, language: str) -> str:
        return f"https://t.me/$fake-{tier.id}"


# --- the services over one session ------------------------------------------------------


class Money:
    def __init__(self, session: AsyncSession, tx: Tx, clock: Any) -> None:
        self.session = session
        self.ledger = Ledger(LedgerRepository(session), clock)
        self.payment_rows = PaymentRepository(session)
        self.jobs = JobRepository(session)
        self.users = UserRepository(session)
        self.subscription_rows = SubscriptionRepository(session)
        self.subscriptions = SubscriptionService(
            self.subscription_rows, self.ledger, tx, tiers=TIERS, free_perks=FREE, clock=clock
        )
        self.payments = PaymentService(
            self.payment_rows,
            self.users,
            self.jobs,
            self.ledger,
            self.subscriptions,
            tx,
            secret=SECRET,
            packages=PACKAGES,
            referral=REFERRAL,
            clock=clock,
        )
        self.refunds = RefundService(
            self.payment_rows, self.users, self.jobs, self.ledger, tx, clock=clock
        )
        self.billing = LedgerBilling(self.ledger, self.payment_rows, clock)
        self.reconciler = MoneyReconciler(self.ledger, self.jobs, self.billing, tx, clock)


# --- the model ----------------------------------------------------------------------------


@dataclass
class Charge:
    """A successful payment as Telegram delivers it (and delivers again)."""

    id: str
    user_id: int
    payload: str
    amount: int
    product: Product
    credits: int  # what it is worth in credits (the base of the referral bonus)
    expires_at: datetime | None = None
    is_recurring: bool = False
    is_first_recurring: bool = False
    recorded: bool = False  # a delivery was committed
    bonus: int = 0  # the referral bonus it must have earned
    grant: int = 0  # the subscription images it must have granted


@dataclass
class JobRef:
    id: int
    user_id: int
    outputs: int
    stars: int
    payload: str | None  # the invoice, when nothing else could pay for it


class World:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.now = START
        base = next(_user_ids)
        self.referrer, self.buyer, self.other = base, base + 1, base + 2
        self.users = (self.referrer, self.buyer, self.other)
        self.referred_by = {self.buyer: self.referrer}
        self.stars = FakeStars()
        self.charges: list[Charge] = []
        self.jobs: list[JobRef] = []
        self.subscription_payloads: dict[int, tuple[str, int]] = {}
        self.orphans: set[int] = set()  # jobs ended without settling their money
        self.expected_top_up: Counter[int] = Counter()
        self._serial = itertools.count()

    def clock(self) -> datetime:
        return self.now

    # --- setup and teardown ------------------------------------------------------------
    async def setup(self) -> None:
        async with self.sessions() as session:
            for user_id in self.users:
                await session.execute(
                    tables.users.insert().values(
                        id=user_id,
                        language="en",
                        referral_code=f"{user_id:08d}"[-8:],
                        referred_by_id=self.referred_by.get(user_id),
                        created_at=START,
                        last_seen_at=START,
                    )
                )
            ledger = Ledger(LedgerRepository(session), self.clock)
            for who, images in TRIAL_IMAGES.items():
                user_id = self.users[who]
                await ledger.post(
                    user_id,
                    Account.TRIAL.value,
                    images,
                    EntryKind.TRIAL_GRANT,
                    f"trial:{user_id}",
                    Reference(),
                )
            await session.commit()

    async def teardown(self) -> None:
        """Delete the example's rows, so the next example's global queries do not see them."""
        async with self.sessions() as session:
            for table in (
                tables.ledger_entries,
                tables.holds,
                tables.refund_requests,
                tables.payments,
                tables.subscriptions,
                tables.balances,
                tables.jobs,
            ):
                await session.execute(table.delete().where(table.c.user_id.in_(self.users)))
            await session.execute(tables.users.delete().where(tables.users.c.id.in_(self.users)))
            await session.commit()

    # --- running one step ------------------------------------------------------------
    async def step(self, operation: tuple[Any, ...]) -> None:
        name, *args = operation
        crash_at = None
        if name == "crash":
            (name, *args), crash_at = args
        # A replay of a recorded payment, or a crash at the first commit, changes nothing.
        before = await self.snapshot() if name in ("crash", "replay") else None
        async with self.sessions() as session:
            tx = Tx(session, crash_at)
            money = Money(session, tx, self.clock)
            try:
                unchanged = await getattr(self, f"op_{name}")(money, tx, *args)
            except CrashError:
                await session.rollback()
                # Crashed at its first commit: nothing of the step may remain.
                unchanged = tx.commits == 1
        if unchanged and before is not None:
            assert await self.snapshot() == before, f"{operation} changed something"
        await self.check()

    async def deliver(self, money: Money, charge: Charge) -> Recorded:
        """Telegram delivers ``successful_payment`` for the charge (again, perhaps)."""
        recorded = await money.payments.record(
            user_id=charge.user_id,
            charge_id=charge.id,
            payload=charge.payload,
            currency="XTR",
            total_amount=charge.amount,
            subscription_expires_at=charge.expires_at,
            is_recurring=charge.is_recurring,
            is_first_recurring=charge.is_first_recurring,
        )
        assert recorded.duplicate == charge.recorded, f"{charge.id}: recorded {charge.recorded}"
        if recorded.duplicate:
            return recorded
        charge.recorded = True
        assert recorded.payment.credits == charge.credits
        if charge.product is Product.PACKAGE:
            self.expected_top_up[charge.user_id] += charge.credits
        elif charge.product is Product.SUBSCRIPTION:
            assert recorded.tier is not None
            charge.grant = recorded.tier.images
            if charge.is_first_recurring:
                self.subscription_payloads[charge.user_id] = (charge.payload, charge.amount)
        paid_for_nothing = charge.product is Product.SINGLE and recorded.refunded
        if charge.user_id in self.referred_by and not paid_for_nothing:
            charge.bonus = charge.credits * REFERRAL.percent // 100
        return recorded

    def new_charge(self, user_id: int, payload: str, amount: int, product: Product) -> Charge:
        worth = credit_value(amount)
        if product is Product.PACKAGE:
            worth = next(p.credits for p in PACKAGES if p.stars == amount)
        charge_id = f"ch-{self.referrer}-{next(self._serial)}"
        return Charge(charge_id, user_id, payload, amount, product, worth)

    async def active_job(self, money: Money, index: int) -> Job | None:
        ids = list(
            await money.session.scalars(
                select(tables.jobs.c.id)
                .where(tables.jobs.c.user_id.in_(self.users), tables.jobs.c.status.in_(ACTIVE))
                .order_by(tables.jobs.c.id)
            )
        )
        if not ids:
            return None
        return await money.jobs.get(ids[index % len(ids)])

    # --- operations: each returns True if it must change nothing ------------------------
    async def op_top_up(self, money: Money, tx: Tx, who: int, package_index: int) -> bool:
        user_id = self.users[who]
        found = money.payments.package_invoice(user_id, PACKAGES[package_index].id)
        assert found is not None
        _, invoice = found
        user = await money.users.get(user_id)
        refusal = await money.payments.check(
            user, payload=invoice.payload, currency="XTR", total_amount=invoice.stars
        )
        assert refusal is None
        charge = self.new_charge(user_id, invoice.payload, invoice.stars, Product.PACKAGE)
        self.charges.append(charge)  # Telegram has the money now: it delivers until we record
        await self.deliver(money, charge)
        return False

    async def op_replay(self, money: Money, tx: Tx, index: int) -> bool:
        if not self.charges:
            return True
        charge = self.charges[index % len(self.charges)]
        already = charge.recorded
        await self.deliver(money, charge)
        return already  # replaying a recorded payment changes nothing at all

    async def op_queue(
        self, money: Money, tx: Tx, who: int, outputs: int, pay: bool = False
    ) -> bool:
        """GenerationService.create's money part; ``pay``: the invoice is paid at once."""
        user_id = (self.buyer, self.buyer, self.other)[who]  # the referrer never spends
        _, subscribed = await money.subscriptions.entitlement(user_id)
        job = Job(
            user_id=user_id,
            reply_to=str(user_id),
            language="en",
            model_id="demo",
            provider="demo",
            provider_model="demo-art",
            mode="custom",
            prompt="p",
            final_prompt="p",
            created_at=self.now,
            updated_at=self.now,
            next_attempt_at=self.now,
            settings={"num_outputs": outputs},
        )
        await money.jobs.add(job)
        assert job.id is not None
        price = Price(outputs, CREDITS_PER_IMAGE * outputs, STARS_PER_IMAGE * outputs, subscribed)
        payload = None
        if not await money.billing.reserve(job, price):
            job.status = JobStatus.AWAITING_PAYMENT.value
            payload = money.payments.job_invoice(job, price.stars).payload
        await tx.commit()
        self.jobs.append(JobRef(job.id, user_id, outputs, price.stars, payload))
        if pay and payload is not None:
            await self.op_pay_job(money, tx, -1, checked=True)
        return False

    async def op_pay_job(self, money: Money, tx: Tx, index: int, checked: bool) -> bool:
        invoiced = [job for job in self.jobs if job.payload is not None]
        if not invoiced:
            return True
        ref = invoiced[index % len(invoiced)]  # -1: the newest
        assert ref.payload is not None
        job = await money.jobs.get(ref.id)
        assert job is not None
        awaiting = job.status == JobStatus.AWAITING_PAYMENT.value
        paid_before = await money.payment_rows.for_job(ref.id) is not None
        if checked:  # else the pre-checkout was answered before the job changed
            user = await money.users.get(ref.user_id)
            refusal = await money.payments.check(
                user, payload=ref.payload, currency="XTR", total_amount=ref.stars
            )
            if awaiting:
                assert refusal is None
            else:
                assert refusal == (Refusal.PAID if paid_before else Refusal.STALE)
            if refusal is not None:
                return True
        charge = self.new_charge(ref.user_id, ref.payload, ref.stars, Product.SINGLE)
        self.charges.append(charge)
        recorded = await self.deliver(money, charge)
        assert (recorded.job is not None) == awaiting
        assert recorded.refunded == (not awaiting)
        return False

    async def op_finish(self, money: Money, tx: Tx, index: int, delivered: int) -> bool:
        job = await self.active_job(money, index)
        if job is None:
            return True
        delivered = min(delivered, int(job.settings["num_outputs"]))
        job.status = JobStatus.SUCCEEDED.value
        job.result_files = [
            {"key": f"r{job.id}-{i}", "mime_type": "image/png"} for i in range(delivered)
        ]
        job.finished_at = self.now
        await money.billing.capture(job, delivered)
        await tx.commit()
        return False

    async def op_fail(self, money: Money, tx: Tx, index: int) -> bool:
        job = await self.active_job(money, index)
        if job is None:
            return True
        job.status = JobStatus.FAILED.value
        job.finished_at = self.now
        await money.billing.release(job)
        await tx.commit()
        return False

    async def op_cancel(self, money: Money, tx: Tx, index: int) -> bool:
        """What GenerationService.cancel does."""
        active = await self.active_job(money, index)
        if active is None:
            return True
        job = await money.jobs.cancel_active(active.id or 0, user_id=active.user_id, now=self.now)
        assert job is not None
        await money.billing.release(job)
        await tx.commit()
        return False

    async def op_orphan(self, money: Money, tx: Tx, index: int, delivered: int) -> bool:
        """The job ends but its money is not settled (left for the reconciler)."""
        job = await self.active_job(money, index)
        if job is None:
            return True
        if delivered < 0:
            job.status = JobStatus.FAILED.value
        else:
            job.status = JobStatus.SUCCEEDED.value
            job.result_files = [
                {"key": f"r{job.id}-{i}", "mime_type": "image/png"} for i in range(delivered)
            ]
        await tx.commit()
        self.orphans.add(job.id or 0)
        return False

    async def op_reconcile(self, money: Money, tx: Tx) -> bool:
        await money.reconciler.run()
        self.orphans.clear()
        return False

    async def op_refunds(self, money: Money, tx: Tx, mode: str, wait: int) -> bool:
        self.now += timedelta(seconds=wait)
        if mode == "give_up":  # Telegram refuses until the Stars go back to the balance
            self.stars.mode = "refuse"
            for _ in range(MAX_REFUND_ATTEMPTS):
                await money.refunds.process_due(self.stars, None)
                self.now += timedelta(hours=6, minutes=1)
        else:
            self.stars.mode = mode
            await money.refunds.process_due(self.stars, None)
        # Every refund that was due has been answered one way or the other.
        pending = select(P.telegram_payment_charge_id).where(
            P.user_id.in_(self.users), P.refund_state == RefundState.PENDING.value
        )
        if mode != "give_up":
            pending = pending.where(P.refund_next_at <= self.now)
        assert list(await money.session.scalars(pending)) == []
        return False

    async def op_subscribe(self, money: Money, tx: Tx, who: int, tier: int, renew: bool) -> bool:
        user_id = self.users[who]
        if renew:  # Telegram charges the next period with the first invoice's payload
            if user_id not in self.subscription_payloads:
                return True
            subscription = await money.subscription_rows.get(user_id)
            assert subscription is not None
            payload, stars = self.subscription_payloads[user_id]
            charge = self.new_charge(user_id, payload, stars, Product.SUBSCRIPTION)
            charge.expires_at = max(subscription.expires_at, self.now) + SUBSCRIPTION_PERIOD
            charge.is_recurring = True
        else:
            invoice = money.payments.subscription_invoice(user_id, TIERS[tier])
            user = await money.users.get(user_id)
            refusal = await money.payments.check(
                user, payload=invoice.payload, currency="XTR", total_amount=invoice.stars
            )
            if refusal is not None:
                assert refusal is Refusal.SUBSCRIBED
                return True
            charge = self.new_charge(user_id, invoice.payload, invoice.stars, Product.SUBSCRIPTION)
            charge.expires_at = self.now + SUBSCRIPTION_PERIOD
            charge.is_recurring = charge.is_first_recurring = True
        self.charges.append(charge)
        await self.deliver(money, charge)
        return False

    async def op_subscription_update(self, money: Money, tx: Tx, who: int, state: str) -> bool:
        await money.subscriptions.on_update(self.users[who], state)
        return False

    async def op_advance(self, money: Money, tx: Tx, hours: int) -> bool:
        self.now += timedelta(hours=hours)
        await money.subscriptions.sweep(None)
        for subscription in await self._subscriptions(money.session):
            if self.now >= subscription.expires_at + RENEWAL_GRACE:
                assert subscription.ended_at is not None, "an expired subscription was not ended"
            if subscription.ended_at == self.now:  # ended just now: what was left expired
                balances = await money.ledger.balances(subscription.user_id)
                assert balances[Account.ALLOWANCE.value] == 0
        return False

    async def settled(self) -> None:
        """The end: every job is over and paid for, every refund answered by Telegram."""
        async with self.sessions() as session:
            pending = await session.scalars(
                select(P.telegram_payment_charge_id).where(
                    P.user_id.in_(self.users), P.refund_state == RefundState.PENDING.value
                )
            )
            assert list(pending) == [], "refunds still pending after Telegram agreed"
            open_holds = await session.scalars(
                select(H.job_id)
                .join(tables.jobs, J.id == H.job_id)
                .where(
                    H.user_id.in_(self.users),
                    H.status == HoldStatus.OPEN.value,
                    J.status.not_in(ACTIVE),
                )
            )
            assert list(open_holds) == [], "ended jobs with money still held"

    # --- observing ------------------------------------------------------------------------
    async def _subscriptions(self, session: AsyncSession) -> list[Subscription]:
        statement = (
            select(Subscription)
            .where(S.user_id.in_(self.users))
            .execution_options(populate_existing=True)
        )
        return list(await session.scalars(statement))

    async def snapshot(self) -> tuple[list[Any], ...]:
        """Everything money-related the example's users have, as plain values."""
        users = self.users
        async with self.sessions() as session:

            async def rows(statement: Any) -> list[Any]:
                return sorted(tuple(row) for row in (await session.execute(statement)).all())

            return (
                await rows(select(B.user_id, B.account, B.amount).where(B.user_id.in_(users))),
                await rows(
                    select(L.idempotency_key, L.amount, L.account).where(L.user_id.in_(users))
                ),
                await rows(
                    select(
                        P.telegram_payment_charge_id,
                        P.status,
                        P.refund_state,
                        P.refund_attempts,
                        P.refund_next_at,
                    ).where(P.user_id.in_(users))
                ),
                await rows(select(H.job_id, H.status, H.captured).where(H.user_id.in_(users))),
                await rows(select(J.id, J.status, J.result_files).where(J.user_id.in_(users))),
                await rows(
                    select(
                        S.user_id,
                        S.tier_id,
                        S.last_charge_id,
                        S.expires_at,
                        S.renewal_canceled,
                        S.renewal_failed,
                        S.ended_at,
                    ).where(S.user_id.in_(users))
                ),
            )

    async def check(self) -> None:
        users = self.users
        async with self.sessions() as session:
            assert await LedgerRepository(session).discrepancies() == []
            entries = (
                await session.execute(
                    select(
                        L.user_id, L.account, L.amount, L.kind, L.idempotency_key, L.job_id
                    ).where(L.user_id.in_(users))
                )
            ).all()
            payments = list(
                await session.scalars(
                    select(Payment)
                    .where(P.user_id.in_(users))
                    .order_by(P.id)
                    .execution_options(populate_existing=True)
                )
            )
            holds = (
                await session.execute(select(tables.holds).where(tables.holds.c.user_id.in_(users)))
            ).all()
            jobs = (
                await session.execute(select(tables.jobs).where(tables.jobs.c.user_id.in_(users)))
            ).all()
            subscriptions = await self._subscriptions(session)
            charge_counts = Counter(
                await session.scalars(
                    select(P.telegram_payment_charge_id)
                    .group_by(P.telegram_payment_charge_id)
                    .having(func.count() > 1)
                )
            )
        assert not charge_counts, f"charges recorded twice: {charge_counts}"

        # Ledger rows: each key once, each of a known kind.
        keys = Counter(entry.idempotency_key for entry in entries)
        assert all(count == 1 for count in keys.values()), keys.most_common(3)
        assert all(KEY.fullmatch(key) for key in keys), [k for k in keys if not KEY.fullmatch(k)]
        amount = {entry.idempotency_key: entry.amount for entry in entries}

        # Payments: exactly the charges delivered and committed, each once, with its rows.
        recorded = {charge.id: charge for charge in self.charges if charge.recorded}
        assert sorted(p.telegram_payment_charge_id for p in payments) == sorted(recorded)
        for payment in payments:
            charge_id = payment.telegram_payment_charge_id
            charge = recorded[charge_id]
            assert (payment.user_id, payment.amount_xtr) == (charge.user_id, charge.amount)
            assert (payment.product, payment.credits) == (charge.product.value, charge.credits)
            bought = amount.get(f"charge:{charge_id}")
            if charge.product is Product.PACKAGE:
                assert bought == charge.credits
            elif charge.product is Product.SINGLE:
                assert bought == payment.amount_xtr
            else:
                assert bought is None
                assert amount.get(f"subscription:{charge_id}") == charge.grant > 0
            bonus = amount.get(f"referral:{charge_id}", 0)
            assert bonus == charge.bonus, f"{charge_id}: bonus {bonus}, expected {charge.bonus}"
            # Refunds: the outbox, Telegram's side, the Stars given back when it refused.
            state = payment.refund_state
            refund = amount.get(f"refund:{charge_id}")
            undone = amount.get(f"refund-undone:{charge_id}")
            assert refund == (None if state is None else -payment.amount_xtr), charge_id
            assert undone == (payment.amount_xtr if state == RefundState.FAILED.value else None)
            assert payment.refund_attempts <= MAX_REFUND_ATTEMPTS
            refunded = payment.status == PaymentStatus.REFUNDED.value
            assert refunded == (state == RefundState.DONE.value)
            telegram = self.stars.refunded.get(charge_id)
            if state == RefundState.DONE.value:
                assert telegram == payment.user_id
            elif state != RefundState.PENDING.value:
                assert telegram is None, f"{charge_id} refunded by Telegram but state {state}"
            reversal = amount.get(f"referral-reversal:{charge_id}")
            if refunded and bonus:
                assert reversal == -bonus, f"{charge_id}: bonus {bonus} reversed by {reversal}"
            else:
                assert reversal is None, f"{charge_id}: reversal {reversal} without a refund"
        refundable = {p.telegram_payment_charge_id for p in payments if p.refund_state}
        assert set(self.stars.asked) <= refundable, "Telegram asked to refund a payment we keep"

        # Top-ups: every package charge credited exactly once.
        top_ups: Counter[int] = Counter()
        for entry in entries:
            if entry.kind == EntryKind.TOP_UP.value:
                top_ups[entry.user_id] += entry.amount
        assert top_ups == self.expected_top_up

        # Referral bonuses: the referrer got each payment's bonus once, and lost it on a refund.
        earned: Counter[int] = Counter()
        for entry in entries:
            if entry.kind in (EntryKind.REFERRAL_BONUS, EntryKind.REFERRAL_REVERSAL):
                earned[entry.user_id] += entry.amount
        refunded_charges = {
            p.telegram_payment_charge_id
            for p in payments
            if p.status == PaymentStatus.REFUNDED.value
        }
        expected_earned: Counter[int] = Counter()
        for charge in recorded.values():
            if charge.bonus and charge.id not in refunded_charges:
                expected_earned[self.referred_by[charge.user_id]] += charge.bonus
        assert +earned == +expected_earned

        # Jobs and holds: one hold per job, settled once, by the job's outcome.
        money_rows: dict[int, list[Any]] = defaultdict(list)
        for entry in entries:
            if entry.job_id is not None and entry.kind in MONEY_KINDS:
                money_rows[entry.job_id].append(entry)
        hold_of = {hold.job_id: hold for hold in holds}
        assert len(hold_of) == len(holds)
        first_payment: dict[int, Payment] = {}
        for payment in payments:
            if payment.product == Product.SINGLE.value and payment.product_ref:
                first_payment.setdefault(int(payment.product_ref), payment)
        for job in jobs:
            hold = hold_of.get(job.id)
            rows = money_rows.get(job.id, [])
            if hold is None:
                assert not rows
                assert job.status not in ACTIVE, f"job {job.id} runs with nothing held"
                continue
            assert hold.user_id == job.user_id
            kinds = Counter(row.kind for row in rows)
            assert kinds[EntryKind.HOLD.value] == (2 if hold.amount else 0)
            paid = first_payment.get(job.id)
            by_invoice = hold.account == Account.STARS.value and paid is not None
            if by_invoice:
                assert paid is not None
                assert (hold.amount, hold.units) == (paid.amount_xtr, job.settings["num_outputs"])
            if hold.status == HoldStatus.OPEN.value:
                assert kinds[EntryKind.CAPTURE.value] == kinds[EntryKind.RELEASE.value] == 0
                assert job.status in ACTIVE or job.id in self.orphans, (
                    f"job {job.id} {job.status} with an open hold"
                )
                continue
            returned = sum(
                r.amount for r in rows if r.kind == EntryKind.RELEASE.value and r.amount > 0
            )
            captured = -sum(r.amount for r in rows if r.kind == EntryKind.CAPTURE.value)
            assert kinds[EntryKind.CAPTURE.value] == (1 if captured else 0)
            assert kinds[EntryKind.RELEASE.value] == (2 if returned else 0)
            assert captured == hold.captured
            assert captured + returned == hold.amount
            if hold.status == HoldStatus.CAPTURED.value:
                assert job.status == JobStatus.SUCCEEDED.value
                delivered = min(len(job.result_files), hold.units)
                assert captured == capture_amount(hold.amount, hold.units, delivered)
                if by_invoice:
                    assert paid is not None
                    assert paid.refund_state is None, f"job {job.id} delivered but refunded"
            else:
                assert hold.status == HoldStatus.RELEASED.value
                assert job.status in ENDED - {JobStatus.SUCCEEDED.value}
                assert captured == 0
                if by_invoice:
                    assert paid is not None
                    assert paid.refund_state is not None, f"job {job.id} failed, no refund"

        # Subscriptions: ended only once over, a grant per paid period.
        for subscription in subscriptions:
            if subscription.ended_at is not None:
                assert subscription.ended_at >= subscription.expires_at
        grants = Counter(e.user_id for e in entries if e.kind == EntryKind.SUBSCRIPTION_GRANT)
        expected_grants = Counter(
            c.user_id for c in recorded.values() if c.product is Product.SUBSCRIPTION
        )
        assert grants == expected_grants


# --- the property ----------------------------------------------------------------------------

WHO = st.integers(0, 2)
JOB = st.integers(0, 20)
queue = st.tuples(st.just("queue"), WHO, st.integers(1, 3), st.sampled_from([True, True, False]))
pay_job = st.tuples(st.just("pay_job"), JOB, st.booleans())
finish = st.tuples(st.just("finish"), JOB, st.integers(0, 3))
fail = st.tuples(st.just("fail"), JOB)
refunds = st.tuples(
    st.just("refunds"),
    st.sampled_from(["ok", "refuse", "lost", "already", "give_up"]),
    st.sampled_from([0, 60, 3600, 6 * 3600]),
)
top_up = st.tuples(st.just("top_up"), WHO, st.integers(0, len(PACKAGES) - 1))
replay = st.tuples(st.just("replay"), st.integers(0, 30))
plain_operation = st.one_of(
    *(queue, queue, queue, pay_job, finish, finish, fail, fail, refunds, refunds),
    *(top_up, top_up, replay, replay),
    st.tuples(st.just("cancel"), JOB),
    st.tuples(st.just("orphan"), JOB, st.integers(-1, 3)),
    st.tuples(st.just("reconcile")),
    st.tuples(st.just("subscribe"), WHO, st.integers(0, len(TIERS) - 1), st.booleans()),
    st.tuples(
        st.just("subscription_update"), WHO, st.sampled_from(["canceled", "active", "failed"])
    ),
    st.tuples(st.just("advance"), st.sampled_from([1, 23, 3 * 24, 27 * 24, 29 * 24 + 12, 31 * 24])),
)
crash = st.tuples(st.just("crash"), plain_operation, st.sampled_from([1, 1, 2, 3]))
operation = st.one_of(*([plain_operation] * 5), crash)

# Paths that must be walked on every run, whatever Hypothesis draws.
PAID_JOB = [("queue", 0, 1, False), ("queue", 0, 1, True)]  # a trial image, then an invoice
REFUNDED_WITH_REVERSAL = [*PAID_JOB, ("fail", 1), ("refunds", "ok", 0), ("replay", 0)]
REFUSED_UNTIL_GIVEN_BACK = [
    *PAID_JOB,
    ("fail", 1),
    ("refunds", "refuse", 0),
    ("refunds", "give_up", 0),
    ("queue", 0, 1, False),  # paid with the Stars given back
    ("finish", 1, 1),
]
CRASH_AFTER_TELEGRAM_REFUNDED = [
    *PAID_JOB,
    ("cancel", 1),
    ("crash", ("refunds", "ok", 0), 3),  # Telegram refunded; our commit never happened
    ("refunds", "refuse", 3600),  # Telegram: CHARGE_ALREADY_REFUNDED
    ("refunds", "lost", 3600),
    ("refunds", "give_up", 0),  # nothing left to give up on: it was refunded
]
REPLAYED_AND_CRASHED_PAYMENTS = [
    ("top_up", 1, 0),
    ("crash", ("top_up", 1, 1), 2),  # Telegram took the money; recording it crashed
    ("replay", 0),
    ("replay", 1),  # now it is recorded
    ("replay", 1),
    ("queue", 1, 3, False),  # paid with credits
    ("crash", ("finish", 0, 2), 1),
    ("finish", 0, 2),
    ("queue", 2, 2, True),
    ("pay_job", 0, False),  # a second payment for the same job: refunded at once
    ("orphan", 0, -1),
    ("replay", 2),
    ("reconcile",),
    ("refunds", "lost", 0),
    ("refunds", "ok", 60),
]
SUBSCRIPTION_LIFECYCLE = [
    ("subscribe", 1, 0, False),
    ("subscribe", 1, 1, False),  # refused: a subscription is active
    ("queue", 1, 2, False),  # from the allowance
    ("orphan", 0, 1),
    ("subscribe", 1, 0, True),  # renewal
    ("replay", 0),
    ("replay", 1),
    ("subscription_update", 1, "canceled"),
    ("advance", 29 * 24 + 12),
    ("advance", 29 * 24 + 12),  # half a day before the second period ends: still on
    ("advance", 31 * 24),
    ("reconcile",),
    ("subscribe", 0, 1, False),  # the referrer's own: no bonus for anyone
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=10, max_size=40))
@example(REFUNDED_WITH_REVERSAL)
@example(REFUSED_UNTIL_GIVEN_BACK)
@example(CRASH_AFTER_TELEGRAM_REFUNDED)
@example(REPLAYED_AND_CRASHED_PAYMENTS)
@example(SUBSCRIPTION_LIFECYCLE)
async def test_any_interleaving_of_money_operations_keeps_the_books_straight(
    sessionmaker: Sessions, operations: list[tuple[Any, ...]]
) -> None:
    world = World(sessionmaker)
    await world.setup()
    try:
        await world.check()
        for operation_ in operations:
            await world.step(operation_)
        await world.step(("reconcile",))
        await world.step(("refunds", "ok", 6 * 3600))  # past the longest back-off
        await world.settled()
    finally:
        await world.teardown()
