"""Callback data of every inline button. Parsed and validated by aiogram's CallbackData."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class MenuAction(StrEnum):
    MAIN = "main"
    GENERATE = "generate"
    HISTORY = "history"
    HELP = "help"
    LANGUAGE = "language"
    PROFILE = "profile"
    TOP_UP = "topup"
    SUBSCRIPTION = "subscription"
    REFERRALS = "referrals"
    SUPPORT = "support"


class MenuCallback(CallbackData, prefix="menu"):
    action: MenuAction


class LanguageCallback(CallbackData, prefix="lang"):
    code: str


class GenerateStep(StrEnum):
    START = "start"  # the model picker
    MODEL = "model"  # value: model id
    MODE = "mode"  # value: template slug
    BACK_TO_MODELS = "models"
    BACK_TO_MODES = "modes"
    CONFIRM = "confirm"
    SETTINGS = "settings"
    SETTING = "setting"  # value: setting name; opens its choices
    SET = "set"  # value: "<setting>=<choice>"
    EDIT_PROMPT = "prompt"
    CLEAR_REFERENCES = "clear_refs"
    SUMMARY = "summary"
    CANCEL = "cancel"


class GenerateCallback(CallbackData, prefix="gen"):
    step: GenerateStep
    value: str = ""


class JobAction(StrEnum):
    REGENERATE = "regen"
    CHANGE_PROMPT = "prompt"
    USE_AS_REFERENCE = "ref"
    RESEND = "resend"
    CANCEL = "cancel"


class JobCallback(CallbackData, prefix="job"):
    action: JobAction
    job_id: int


class MoneyAction(StrEnum):
    PACKAGE = "package"  # value: package id
    RENEWAL_CANCEL = "cancel_renewal"
    RENEWAL_RESUME = "resume_renewal"
    REFUND_JOB = "refund"  # value: job id
    CANCEL_UNPAID = "cancel_unpaid"


class MoneyCallback(CallbackData, prefix="money"):
    action: MoneyAction
    value: str = ""


class ApiKeyAction(StrEnum):
    LIST = "list"
    CREATE = "create"
    REVOKE = "revoke"  # key_id: asks to confirm
    CONFIRM_REVOKE = "confirm"  # key_id


class ApiKeyCallback(CallbackData, prefix="apikey"):
    action: ApiKeyAction
    key_id: int = 0
