"""Texts about money: balances, prices, payments, subscriptions, referrals, support."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram.utils.i18n import gettext as _

from lumigram.domain.invoices import Product
from lumigram.domain.money import UNMATCHED, Account, Funding, Package, Payment, PaymentStatus
from lumigram.domain.subscriptions import Subscription, Tier
from lumigram.services.account import Overview, ReferralStats
from lumigram.services.payments import Recorded, Refusal
from lumigram.services.subscriptions import SubscriptionView


def date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def funding_line(funding: Funding | None, left: int, credits_price: int, stars: int) -> str:
    """How the request on the summary screen will be paid."""
    if funding is None:
        return _(
            "Price: <b>{credits} credit</b> (you have {balance}) or <b>{stars} ⭐</b> "
            "paid right now",
            "Price: <b>{credits} credits</b> (you have {balance}) or <b>{stars} ⭐</b> "
            "paid right now",
            credits_price,
        ).format(credits=credits_price, balance=left, stars=stars)
    if funding.account is Account.TRIAL:
        return _(
            "🎁 Free: uses {used} of your {left} free image",
            "🎁 Free: uses {used} of your {left} free images",
            left,
        ).format(used=funding.amount, left=left)
    if funding.account is Account.ALLOWANCE:
        return _(
            "💎 Subscription: uses {used} of {left} image left this period",
            "💎 Subscription: uses {used} of {left} images left this period",
            left,
        ).format(used=funding.amount, left=left)
    if funding.account is Account.STARS:
        return _("Price: <b>{stars} ⭐</b> from your Stars balance ({left})").format(
            stars=funding.amount, left=left
        )
    return _(
        "Price: <b>{credits} credit</b> (balance: {balance})",
        "Price: <b>{credits} credits</b> (balance: {balance})",
        funding.amount,
    ).format(credits=funding.amount, balance=left)


def pay_button(stars: int) -> str:
    return _("Pay {stars} ⭐").format(stars=stars)


def awaiting_payment(stars: int) -> str:
    return _(
        "💳 <b>No free images or credits left</b>\n\n"
        "Pay <b>{stars} ⭐</b> with the invoice below and the image starts right away. "
        "If it fails, the Stars come back automatically.\n\n"
        "Or top up credits, or subscribe for a monthly allowance."
    ).format(stars=stars)


def job_invoice_title() -> str:
    return _("Image generation")


def job_invoice_description(model: str, outputs: int) -> str:
    return _("{model} · images: {count}").format(count=outputs, model=model)


def credits_amount(count: int) -> str:
    """A number of credits in the user's language ("1 credit", "5 credits")."""
    return _("{credits} credit", "{credits} credits", count).format(credits=count)


def paid_amount(account: Account, amount: int) -> str:
    """What a generation cost: credits, or Stars (⭐)."""
    if account is Account.STARS:
        return f"{amount} ⭐"
    return credits_amount(amount)


def package_invoice_title(package: Package) -> str:
    return credits_amount(package.credits)


def package_invoice_description(package: Package) -> str:
    return _(
        "{credits} credit for image generation in Lumigram",
        "{credits} credits for image generation in Lumigram",
        package.credits,
    ).format(credits=package.credits)


def subscription_invoice_description(tier: Tier) -> str:
    return _(
        "{name}: {images} image every 30 days, renewed automatically",
        "{name}: {images} images every 30 days, renewed automatically",
        tier.images,
    ).format(name=tier.name, images=tier.images)


def refusal(reason: Refusal) -> str:
    """Shown by Telegram in the payment window (at most 255 characters)."""
    texts = {
        Refusal.UNKNOWN: _("This invoice is not valid. Please start again from the bot."),
        Refusal.STALE: _("This offer has expired or changed. Please request a new invoice."),
        Refusal.PAID: _("This has already been paid."),
        Refusal.BANNED: _("Your account is blocked, so payments are not accepted."),
        Refusal.SUBSCRIBED: _("You already have an active subscription."),
    }
    return texts[reason]


def refusal_stale() -> str:
    return refusal(Refusal.STALE)


def paid_generation() -> str:
    return _("✅ Payment received. Your image is being generated.")


def paid_but_gone(stars: int) -> str:
    return _(
        "This request was cancelled before the payment arrived, so your {stars} ⭐ "
        "is being refunded.",
        "This request was cancelled before the payment arrived, so your {stars} ⭐ "
        "are being refunded.",
        stars,
    ).format(stars=stars)


def credit_balance(balance: int) -> str:
    return _("Your balance: {balance} credit.", "Your balance: {balance} credits.", balance).format(
        balance=balance
    )


def credits_added(added: int, balance: int) -> str:
    added_text = _("✅ <b>+{credits} credit</b>.", "✅ <b>+{credits} credits</b>.", added).format(
        credits=added
    )
    return f"{added_text} {credit_balance(balance)}"


def subscribed(tier: Tier, until: datetime) -> str:
    return _(
        "✅ <b>{name}</b> is active until {date}: {images} image this period.",
        "✅ <b>{name}</b> is active until {date}: {images} images this period.",
        tier.images,
    ).format(name=escape(tier.name), date=date(until), images=tier.images)


def unmatched_payment() -> str:
    return _(
        "We received your payment but could not match it to a purchase. "
        "It is kept safe; write to /paysupport and we will sort it out."
    )


def refunded(stars: int) -> str:
    return _(
        "↩️ The generation failed, so your {stars} ⭐ was refunded.",
        "↩️ The generation failed, so your {stars} ⭐ were refunded.",
        stars,
    ).format(stars=stars)


def terms() -> str:
    return _(
        "<b>Terms of payment</b>\n\n"
        "• Prices are shown before you pay; payments are made in Telegram Stars.\n"
        "• Free images, credits and subscription images are spent only when an image "
        "is delivered. A failed generation costs nothing: credits go back, and Stars paid "
        "for it are refunded automatically.\n"
        "• Credits do not expire. A subscription lasts 30 days and renews until you cancel "
        "it; unused images of a period do not carry over.\n"
        "• For other refunds use /refund or write to /paysupport.\n"
        "• Generated images must follow the law and Telegram's rules."
    )


def terms_before_first_purchase() -> str:
    return _("Before your first purchase, please read our terms:") + "\n\n" + terms()


def paysupport(contact: str) -> str:
    text = _(
        "<b>Payment support</b>\n\n"
        "Problems with a payment or a refund? Use /refund to ask for a refund of a paid "
        "generation, and we will answer here."
    )
    if contact:
        text += "\n" + _("You can also write to {contact}.").format(contact=escape(contact))
    return text


# --- profile and balance -------------------------------------------------------------


def profile(overview: Overview, link: str) -> str:
    lines = [
        _("👤 <b>Your profile</b>"),
        "",
        _("Credits: <b>{credits}</b>").format(credits=overview.credits),
        _("Free images left: <b>{count}</b>").format(count=overview.trial_left),
    ]
    if overview.stars:
        lines.append(_("Stars balance: <b>{stars} ⭐</b>").format(stars=overview.stars))
    lines.append(subscription_line(overview.subscription))
    lines += [
        "",
        _("Invited friends: {invited}, credits earned: {earned}").format(
            invited=overview.referrals.invited, earned=overview.referrals.earned
        ),
        _("Your invite link: {link}").format(link=escape(link)),
    ]
    if overview.payments:
        lines += ["", _("<b>Recent payments</b>")]
        lines += [payment_line(payment) for payment in overview.payments]
    return "\n".join(lines)


def payment_line(payment: Payment) -> str:
    kinds = {"s": _("image"), "p": _("credits"), "u": _("subscription")}
    refunded = payment.status == PaymentStatus.REFUNDED.value
    what = kinds.get(payment.product, _("other"))
    line = f"{date(payment.created_at)} · {payment.amount_xtr} ⭐ · {what}"
    return line + (" · " + _("refunded") if refunded else "")


def subscription_line(view: SubscriptionView) -> str:
    if not view.active or view.subscription is None:
        return _("Subscription: none")
    name = escape(view.tier.name) if view.tier else view.subscription.tier_id
    return _(
        "Subscription: <b>{name}</b>, {left} image left, until {date}",
        "Subscription: <b>{name}</b>, {left} images left, until {date}",
        view.allowance_left,
    ).format(name=name, left=view.allowance_left, date=date(view.subscription.expires_at))


def top_up(balance: int) -> str:
    return "\n".join(
        [
            _("⭐ <b>Top up</b>"),
            "",
            credit_balance(balance),
            _("Choose a package; bigger packages are cheaper per credit."),
        ]
    )


def package_button(package: Package) -> str:
    return _(
        "{credits} credit — {stars} ⭐", "{credits} credits — {stars} ⭐", package.credits
    ).format(credits=package.credits, stars=package.stars)


# --- subscriptions --------------------------------------------------------------------


def subscription_screen(view: SubscriptionView, tiers: list[Tier]) -> str:
    if not tiers and not view.active:
        return _("Subscriptions are not offered at the moment.")
    lines = [_("💎 <b>Subscription</b>"), ""]
    sub = view.subscription
    if view.active and sub is not None:
        name = escape(view.tier.name) if view.tier else sub.tier_id
        lines.append(_("Your plan: <b>{name}</b>").format(name=name))
        lines.append(_("Images left this period: {left}").format(left=view.allowance_left))
        if sub.renews():
            lines.append(_("Renews on {date}").format(date=date(sub.expires_at)))
        else:
            lines.append(_("Renewal is off: it ends on {date}").format(date=date(sub.expires_at)))
        return "\n".join(lines)
    lines.append(_("A subscription gives you images every 30 days and more:"))
    for tier in tiers:
        lines.append("")
        lines.append(tier_description(tier))
    return "\n".join(lines)


def tier_description(tier: Tier) -> str:
    perks = tier.perks
    text = _(
        "<b>{name}</b> — {stars} ⭐ / 30 days\n"
        "{images} image, up to {outputs} per request, {jobs} at once, priority queue",
        "<b>{name}</b> — {stars} ⭐ / 30 days\n"
        "{images} images, up to {outputs} per request, {jobs} at once, priority queue",
        tier.images,
    ).format(
        name=escape(tier.name),
        stars=tier.stars,
        images=tier.images,
        outputs=perks.max_outputs,
        jobs=perks.max_active_jobs,
    )
    if perks.premium_models:
        text += "\n" + _("Premium models included")
    return text


def subscribe_button(tier: Tier) -> str:
    return _("Subscribe: {name} — {stars} ⭐").format(name=tier.name, stars=tier.stars)


def renewal_changed(canceled: bool, until: datetime) -> str:
    if canceled:
        return _("Renewal cancelled. Your plan stays active until {date}.").format(date=date(until))
    return _("Renewal resumed. It renews on {date}.").format(date=date(until))


def no_subscription() -> str:
    return _("You have no active subscription.")


def subscription_expiring(subscription: Subscription, tier: Tier | None) -> str:
    name = escape(tier.name) if tier else subscription.tier_id
    if subscription.renews():
        return _("💎 Your {name} subscription renews on {date}.").format(
            name=name, date=date(subscription.expires_at)
        )
    return _("💎 Your {name} subscription ends on {date}. Open /subscription to keep it.").format(
        name=name, date=date(subscription.expires_at)
    )


def subscription_ended(subscription: Subscription, tier: Tier | None) -> str:
    name = escape(tier.name) if tier else subscription.tier_id
    return _("Your {name} subscription has ended. Open /subscription to subscribe again.").format(
        name=name
    )


def allowance_used_up(subscription: Subscription, tier: Tier | None) -> str:
    return _(
        "You have used all images of this period. It renews on {date}; until then "
        "images are paid with credits or Stars."
    ).format(date=date(subscription.expires_at))


def perk_required(perk: str, limit: int) -> str:
    if perk == "premium":
        return _("Premium models come with a subscription that includes them. See /subscription.")
    return _(
        "Without a subscription you can ask for up to {limit} image at once. See /subscription.",
        "Without a subscription you can ask for up to {limit} images at once. See /subscription.",
        limit,
    ).format(limit=limit)


# --- referrals and refunds ---------------------------------------------------------------


def referrals(stats: ReferralStats, link: str, percent: int) -> str:
    return _(
        "🎁 <b>Invite friends</b>\n\n"
        "Share your link. When someone you invited pays, you get {percent}% of the "
        "credits they buy.\n\n"
        "Your link: {link}\n"
        "Invited: {invited}\n"
        "Credits earned: {earned}"
    ).format(percent=percent, link=escape(link), invited=stats.invited, earned=stats.earned)


def refund_pick() -> str:
    return _("Which paid generation do you want refunded?")


def refund_none() -> str:
    return _(
        "There is nothing to refund: none of your recent generations was paid with credits "
        "or Stars. Free images cost nothing, and failed generations are refunded "
        "automatically. For anything else, write to /paysupport."
    )


def refund_reason() -> str:
    return _("Please describe in one message what went wrong.")


def refund_stored(request_id: int) -> str:
    return _(
        "Thank you. Your refund request #{id} was sent to the operator; you will get an "
        "answer here."
    ).format(id=request_id)


def refund_not_possible() -> str:
    return _("That generation cannot be refunded here. Write to /paysupport.")


def unpaid_cancelled() -> str:
    return _("Cancelled. Nothing was charged.")


def payment_outcome(recorded: Recorded, credits_balance: int) -> str | None:
    """What the user is told once a payment is recorded (by its update or the
    reconciliation); None for a replayed one."""
    payment = recorded.payment
    if recorded.duplicate:
        return None
    if recorded.job is not None:
        return paid_generation()
    if recorded.refunded:
        return paid_but_gone(payment.amount_xtr)
    if recorded.tier is not None and payment.subscription_expires_at is not None:
        return subscribed(recorded.tier, payment.subscription_expires_at)
    if payment.product == Product.PACKAGE.value:
        return credits_added(payment.credits, credits_balance)
    if payment.product == UNMATCHED:
        return unmatched_payment()
    return None
