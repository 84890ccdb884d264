"""The audit trail of admin actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(eq=False)
class AuditEntry:
    actor_id: int | None
    action: str
    created_at: datetime
    target_type: str | None = None
    target_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
