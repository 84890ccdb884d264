"""reconciliation with Telegram's Star transactions: a cursor, unmatched transactions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:50:45.337022
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_state")),
    )
    op.create_table(
        "star_transaction_issues",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("invoice_payload", sa.String(length=128), nullable=True),
        sa.Column("problem", sa.String(length=256), nullable=False),
        sa.Column("transaction_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_star_transaction_issues")),
        sa.UniqueConstraint(
            "transaction_id",
            "direction",
            name=op.f("uq_star_transaction_issues_transaction_id_direction"),
        ),
    )


def downgrade() -> None:
    op.drop_table("star_transaction_issues")
    op.drop_table("app_state")
