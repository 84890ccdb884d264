"""the bot's conversation state in the database (aiogram FSM without Redis)

One row per conversation key (bot, chat, thread, user, business connection,
destiny): the state's name and its data as a JSON object. Rows not updated for
a while are pruned (``bot.fsm.SqlStorage.prune``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fsm_states",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), server_default="{}", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm_states")),
    )
    op.create_index("ix_fsm_states_updated_at", "fsm_states", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_fsm_states_updated_at", table_name="fsm_states")
    op.drop_table("fsm_states")
