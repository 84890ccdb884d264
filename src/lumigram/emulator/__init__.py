"""A Telegram Bot API emulator for end-to-end tests of the bot.

A real HTTP server speaking the Bot API (validated against the official method and
type tables, Bot API 10.2) plus simulated users who talk to the bot. See
:class:`TelegramEmulator`.
"""

from .emulator import TelegramEmulator
from .errors import ApiError
from .flood import FloodLimits
from .messages import ChatMessage, render_transcript
from .payments import PaymentResult
from .server import RecordedRequest
from .spec import ApiSpec, load_spec
from .users import CallbackAnswer, SimUser

__all__ = [
    "ApiError",
    "ApiSpec",
    "CallbackAnswer",
    "ChatMessage",
    "FloodLimits",
    "PaymentResult",
    "RecordedRequest",
    "SimUser",
    "TelegramEmulator",
    "load_spec",
    "render_transcript",
]
