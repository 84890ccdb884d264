"""channel-neutral jobs, API keys, and the Telegram channel's own ids in its tables

Jobs say through which channel they came (``channel``, ``reply_to``) instead of
carrying a Telegram chat id, status message and file ids: those move to
``telegram_job_messages`` and ``telegram_files``. API keys, and an API request's
idempotency key on its job.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TELEGRAM_FILE_KEYS = ("photo_file_id", "document_file_id")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("signing_secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_user_id", ["user_id"], unique=False)

    op.create_table(
        "telegram_job_messages",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status_message_id", sa.BigInteger(), nullable=True),
        sa.Column("status_text", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_telegram_job_messages_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_telegram_job_messages")),
    )
    op.create_table(
        "telegram_files",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("photo_file_id", sa.String(length=256), nullable=True),
        sa.Column("document_file_id", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_telegram_files_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "position", name=op.f("pk_telegram_files")),
    )

    # No table copy for `jobs` (SQLite's batch mode would copy it, and dropping the old
    # copy deletes or orphans the rows that refer to it): columns are added and dropped
    # in place (SQLite 3.35+), the idempotency rule is a unique index.
    op.add_column(
        "jobs",
        sa.Column("channel", sa.String(length=16), server_default="telegram", nullable=False),
    )
    op.add_column(
        "jobs", sa.Column("reply_to", sa.String(length=64), server_default="", nullable=False)
    )
    # The key that made an API job (keys are revoked, never deleted; no foreign key, so
    # SQLite needs no table copy).
    op.add_column("jobs", sa.Column("api_key_id", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(length=128), nullable=True))
    op.add_column("jobs", sa.Column("request_hash", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_jobs_api_key_id_idempotency_key",
        "jobs",
        ["api_key_id", "idempotency_key"],
        unique=True,
    )

    # Every job so far came through Telegram: its chat, status message and file ids move.
    bind = op.get_bind()
    op.execute("UPDATE jobs SET reply_to = CAST(chat_id AS VARCHAR(64))")
    op.execute(
        "INSERT INTO telegram_job_messages (job_id, chat_id, status_message_id, status_text) "
        "SELECT id, chat_id, status_message_id, status_text FROM jobs"
    )
    jobs = sa.table("jobs", sa.column("id", sa.Integer()), sa.column("result_files", sa.JSON()))
    files = sa.table(
        "telegram_files",
        sa.column("job_id", sa.Integer()),
        sa.column("position", sa.Integer()),
        sa.column("photo_file_id", sa.String()),
        sa.column("document_file_id", sa.String()),
    )
    for job_id, raw in bind.execute(sa.select(jobs.c.id, jobs.c.result_files)).all():
        results: list[dict[str, Any]] = json.loads(raw) if isinstance(raw, str) else raw or []
        ids = [
            {"job_id": job_id, "position": i, **{k: r.get(k) for k in TELEGRAM_FILE_KEYS}}
            for i, r in enumerate(results)
            if any(r.get(k) for k in TELEGRAM_FILE_KEYS)
        ]
        if ids:
            bind.execute(sa.insert(files), ids)
            cleaned = [{k: v for k, v in r.items() if k not in TELEGRAM_FILE_KEYS} for r in results]
            bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(result_files=cleaned))

    op.drop_column("jobs", "chat_id")
    op.drop_column("jobs", "status_message_id")
    op.drop_column("jobs", "status_text")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_text", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("status_message_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("chat_id", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE jobs SET chat_id = (SELECT m.chat_id FROM telegram_job_messages m "
        "WHERE m.job_id = jobs.id), status_message_id = (SELECT m.status_message_id "
        "FROM telegram_job_messages m WHERE m.job_id = jobs.id), status_text = "
        "(SELECT m.status_text FROM telegram_job_messages m WHERE m.job_id = jobs.id) "
        "WHERE EXISTS (SELECT 1 FROM telegram_job_messages m WHERE m.job_id = jobs.id)"
    )
    # Jobs that came through the API have no chat: delete them with the channel columns.
    op.execute("DELETE FROM jobs WHERE channel <> 'telegram'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_api_key_id_idempotency_key")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("callback_url")
        batch_op.drop_column("api_key_id")
        batch_op.drop_column("reply_to")
        batch_op.drop_column("channel")
    op.drop_table("telegram_files")
    op.drop_table("telegram_job_messages")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_user_id")
    op.drop_table("api_keys")
