"""Conversation states (aiogram FSM). The draft itself lives in the state's data."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class GenerateForm(StatesGroup):
    choosing = State()  # model and mode, by buttons
    prompt = State()  # waiting for the prompt text (or reference photos)
    summary = State()  # the confirmation screen; photos add references
    seed = State()  # waiting for a seed number
    negative = State()  # waiting for a negative prompt


class RefundForm(StatesGroup):
    reason = State()  # waiting for why the chosen generation should be refunded
