"""One router per feature. Each module builds a fresh Router (a router can belong to one
dispatcher only), and ``get_routers`` gives them in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from lumigram.bot.handlers import (
    account,
    api_keys,
    errors,
    fallback,
    generate,
    help_screen,
    jobs,
    language,
    menu,
    payments,
    start,
    subscription,
    support,
)


def get_routers() -> list[Router]:
    # fallback last: it catches whatever no feature router handled.
    # payments early: a successful_payment message must reach its handler, whatever
    # conversation state the user is in.
    modules = (
        errors,
        payments,
        start,
        menu,
        help_screen,
        language,
        account,
        subscription,
        support,
        api_keys,
        jobs,
        generate,
        fallback,
    )
    return [module.create_router() for module in modules]
