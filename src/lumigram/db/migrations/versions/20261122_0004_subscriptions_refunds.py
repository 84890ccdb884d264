"""subscriptions, refund requests and automatic refunds

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:58:12.593634
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("tier_id", sa.String(length=16), nullable=False),
        sa.Column("first_charge_id", sa.String(length=128), nullable=False),
        sa.Column("last_charge_id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewal_canceled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("renewal_failed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_notice_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("allowance_notice_for", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_subscriptions")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_ended_at_expires_at", ["ended_at", "expires_at"], unique=False
        )

    op.create_table(
        "refund_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_refund_requests_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refund_requests_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_refund_requests_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_requests")),
    )
    with op.batch_alter_table("refund_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_refund_requests_status_created_at", ["status", "created_at"], unique=False
        )

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_state", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("refund_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("refund_next_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refund_error", sa.String(length=256), nullable=True))
        batch_op.create_index(
            "ix_payments_product_product_ref", ["product", "product_ref"], unique=False
        )
        batch_op.create_index(
            "ix_payments_refund_state_refund_next_at",
            ["refund_state", "refund_next_at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_refund_state_refund_next_at")
        batch_op.drop_index("ix_payments_product_product_ref")
        batch_op.drop_column("refund_error")
        batch_op.drop_column("refund_next_at")
        batch_op.drop_column("refund_attempts")
        batch_op.drop_column("refund_state")

    with op.batch_alter_table("refund_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_refund_requests_status_created_at")

    op.drop_table("refund_requests")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_ended_at_expires_at")

    op.drop_table("subscriptions")
