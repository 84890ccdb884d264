"""What counts as a usable prompt."""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class PromptProblem(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    NO_TEXT = "no_text"  # only control, format or whitespace characters


class PromptError(ValueError):
    def __init__(self, problem: PromptProblem, limit: int) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.limit = limit


def clean_prompt(text: str | None, max_length: int) -> str:
    """The prompt with control characters removed and whitespace tidied, or PromptError."""
    if text is None or not text.strip():
        raise PromptError(PromptProblem.EMPTY, max_length)
    kept = "".join(
        " " if ch in "\t\r\n" else ch
        for ch in text
        if ch in "\t\r\n" or unicodedata.category(ch)[0] != "C"
    )
    cleaned = " ".join(kept.split())
    if not cleaned:
        raise PromptError(PromptProblem.NO_TEXT, max_length)
    if len(cleaned) > max_length:
        raise PromptError(PromptProblem.TOO_LONG, max_length)
    return cleaned
