"""Table definitions. Portable types only: integers, strings, UTC timestamps, JSON."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    false,
)

from lumigram.db.base import UTCDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(64)),
    Column("first_name", String(256), nullable=False, server_default=""),
    Column("language", String(8), nullable=False),
    Column("role", String(16), nullable=False, server_default="user"),
    Column("is_banned", Boolean, nullable=False, server_default=false()),
    Column("ban_reason", String(512)),
    Column("referral_code", String(16), nullable=False, unique=True),
    Column("referred_by_id", BigInteger, ForeignKey("users.id", ondelete="SET NULL")),
    # The first /start deep-link payload, as given; the referral feature reads it.
    Column("start_payload", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Index("ix_users_referred_by_id", "referred_by_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor_id", BigInteger, ForeignKey("users.id")),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32)),
    Column("target_id", String(64)),
    Column("details", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_audit_log_created_at", "created_at"),
)
