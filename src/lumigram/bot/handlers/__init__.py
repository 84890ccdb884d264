"""One router per feature; ``get_routers`` gives them in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from lumigram.bot.handlers import errors, fallback, help_screen, language, menu, start


def get_routers() -> list[Router]:
    # fallback last: it catches whatever no feature router handled.
    return [
        errors.router,
        start.router,
        menu.router,
        help_screen.router,
        language.router,
        fallback.router,
    ]
