"""Maps the domain's entity classes onto the tables (SQLAlchemy imperative mapping).

The domain stays free of SQLAlchemy imports; this module is imported once by
the db adapter before any session is used.
"""

from __future__ import annotations

from sqlalchemy.orm import registry

from lumigram.db import tables
from lumigram.db.base import metadata
from lumigram.domain.api_keys import ApiKey
from lumigram.domain.audit import AuditEntry
from lumigram.domain.jobs import Job
from lumigram.domain.money import Hold, LedgerEntry, Payment, RefundRequest
from lumigram.domain.subscriptions import Subscription
from lumigram.domain.templates import Template
from lumigram.domain.users import User

mapper_registry = registry(metadata=metadata)
_mapped = False


def map_entities() -> None:
    global _mapped
    if _mapped:
        return
    mapper_registry.map_imperatively(User, tables.users)
    mapper_registry.map_imperatively(AuditEntry, tables.audit_log)
    mapper_registry.map_imperatively(Template, tables.templates)
    mapper_registry.map_imperatively(Job, tables.jobs)
    mapper_registry.map_imperatively(LedgerEntry, tables.ledger_entries)
    mapper_registry.map_imperatively(Hold, tables.holds)
    mapper_registry.map_imperatively(Payment, tables.payments)
    mapper_registry.map_imperatively(Subscription, tables.subscriptions)
    mapper_registry.map_imperatively(RefundRequest, tables.refund_requests)
    mapper_registry.map_imperatively(ApiKey, tables.api_keys)
    _mapped = True
