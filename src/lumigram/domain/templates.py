"""Modes and templates: how a user's subject becomes the prompt sent to a model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SUBJECT = "{subject}"


class TemplateKind(StrEnum):
    PRESET = "preset"  # the subject is wrapped in a tuned prompt
    CUSTOM = "custom"  # the user's text as is
    COLORING = "coloring"  # line art, post-processed into a printable black-and-white page


@dataclass(eq=False)
class Template:
    slug: str
    titles: dict[str, str]
    created_at: datetime
    kind: str = TemplateKind.PRESET.value
    prompt_template: str = SUBJECT
    preferred_model_id: str | None = None
    preview_key: str | None = None
    sort_order: int = 0
    is_trending: bool = False
    is_active: bool = True
    usage_count: int = 0
    id: int | None = None

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.titles.get("en") or self.slug

    @property
    def template_kind(self) -> TemplateKind:
        return TemplateKind(self.kind)

    def render(self, subject: str) -> str:
        """The prompt for the model. Only ``{subject}`` is substituted (no str.format)."""
        if self.template_kind is TemplateKind.CUSTOM:
            return subject
        return self.prompt_template.replace(SUBJECT, subject)
