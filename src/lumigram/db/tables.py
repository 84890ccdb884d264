"""Table definitions. Portable types only: integers, strings, UTC timestamps, JSON."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

from lumigram.db.base import EnumText, UTCDateTime, metadata
from lumigram.domain.jobs import Channel, JobStatus, JobStep

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

templates = Table(
    "templates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Stable name of the built-in modes (nature, cars, ...); admin templates get one too.
    Column("slug", String(64), nullable=False, unique=True),
    # preset: wraps the user's subject in `prompt_template`; custom: the prompt as is;
    # coloring: line art, post-processed into a printable black-and-white page.
    Column("kind", String(16), nullable=False, server_default="preset"),
    Column("titles", JSON, nullable=False),  # {"en": ..., "ru": ..., "uz": ...}
    Column("prompt_template", Text, nullable=False, server_default="{subject}"),
    Column("preferred_model_id", String(64)),
    Column("preview_key", String(256)),
    Column("sort_order", Integer, nullable=False, server_default="0"),
    Column("is_trending", Boolean, nullable=False, server_default=false()),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("usage_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    # Through which way in the job was asked for, and that channel's address (a chat id,
    # an API key id); the channels keep their own message and file ids in their tables.
    Column("channel", EnumText(Channel), nullable=False, server_default="telegram"),
    Column("reply_to", String(64), nullable=False, server_default=""),
    Column("api_key_id", Integer),  # an API job's key (keys are revoked, never deleted)
    Column("callback_url", String(2048)),
    Column("idempotency_key", String(128)),
    Column("request_hash", String(64)),
    Column("language", String(8), nullable=False),
    Column("model_id", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_model", String(128), nullable=False),
    Column("mode", String(64), nullable=False),
    Column("template_id", Integer, ForeignKey("templates.id", ondelete="SET NULL")),
    Column("prompt", Text, nullable=False),
    Column("final_prompt", Text, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("reference_files", JSON, nullable=False),
    Column("status", EnumText(JobStatus), nullable=False),
    Column("step", EnumText(JobStep), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("provider_job_id", String(128)),
    Column("progress", Float),
    Column("provider_state", String(32)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("polls", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_expires_at", UTCDateTime()),
    # Whoever claimed the current step; writes after a step are conditional on it.
    Column("lease_token", String(32)),
    Column("error_class", String(32)),
    Column("error_message", Text),
    Column("user_error", Text),
    Column("result_files", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("delivered_at", UTCDateTime()),
    Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
    # The sweeper's query: active jobs that are due.
    Index("ix_jobs_status_next_attempt_at", "status", "next_attempt_at"),
    # A retried API request with the same Idempotency-Key finds its job.
    Index("ix_jobs_api_key_id_idempotency_key", "api_key_id", "idempotency_key", unique=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("signing_secret", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Index("ix_api_keys_user_id", "user_id"),
)

# --- the Telegram channel's own ids -----------------------------------------------

telegram_job_messages = Table(
    "telegram_job_messages",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("chat_id", BigInteger, nullable=False),
    Column("status_message_id", BigInteger),
    # The text the status message shows now, so a restarted worker never re-sends it.
    Column("status_text", String(256)),
)

telegram_files = Table(
    "telegram_files",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("photo_file_id", String(256)),
    Column("document_file_id", String(256)),
)

# --- money ------------------------------------------------------------------------

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("telegram_payment_charge_id", String(128), nullable=False, unique=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("invoice_payload", String(128), nullable=False),
    Column("product", String(32), nullable=False),  # single, package, subscription
    Column("product_ref", String(64)),  # job id, package id or subscription tier
    Column("amount_xtr", Integer, nullable=False),
    Column("credits", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # paid, refunded
    Column("subscription_expires_at", UTCDateTime()),
    Column("is_recurring", Boolean, nullable=False, server_default=false()),
    Column("is_first_recurring", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("refunded_at", UTCDateTime()),
    # Automatic refunds (refundStarPayment) are an outbox: marked here in the same
    # transaction as the failure, sent afterwards, retried until Telegram agrees.
    Column("refund_state", String(16)),  # pending, done, failed
    Column("refund_attempts", Integer, nullable=False, server_default="0"),
    Column("refund_next_at", UTCDateTime()),
    Column("refund_error", String(256)),
    Index("ix_payments_user_id_created_at", "user_id", "created_at"),
    Index("ix_payments_product_product_ref", "product", "product_ref"),
    Index("ix_payments_refund_state_refund_next_at", "refund_state", "refund_next_at"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id"), primary_key=True),
    Column("tier_id", String(16), nullable=False),
    Column("first_charge_id", String(128), nullable=False),
    Column("last_charge_id", String(128), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("renewal_canceled", Boolean, nullable=False, server_default=false()),
    Column("renewal_failed", Boolean, nullable=False, server_default=false()),
    Column("ended_at", UTCDateTime()),
    Column("expiry_notice_for", UTCDateTime()),
    Column("allowance_notice_for", UTCDateTime()),
    Index("ix_subscriptions_ended_at_expires_at", "ended_at", "expires_at"),
)

refund_requests = Table(
    "refund_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("payment_id", Integer, ForeignKey("payments.id")),
    Column("reason", String(1000), nullable=False),
    Column("status", String(16), nullable=False),  # open, approved, rejected
    Column("created_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime()),
    Index("ix_refund_requests_status_created_at", "status", "created_at"),
)

balances = Table(
    "balances",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id"), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("amount", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The database itself refuses an overdraft, whatever the code above it does.
    CheckConstraint("amount >= 0", name="non_negative"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("account", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("payment_id", Integer, ForeignKey("payments.id")),
    Column("job_id", Integer, ForeignKey("jobs.id")),
    Column("admin_id", BigInteger),
    Column("note", String(256)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_ledger_entries_user_id_account", "user_id", "account"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, unique=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("account", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("units", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("captured", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("settled_at", UTCDateTime()),
)

# --- reconciliation with Telegram's own record (getStarTransactions) ---------------

app_state = Table(
    "app_state",
    metadata,
    # Small named values the application keeps between runs (e.g. the Stars cursor).
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

star_transaction_issues = Table(
    "star_transaction_issues",
    metadata,
    # A Star transaction Telegram shows that matches nothing here: kept for the operator.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(128), nullable=False),
    Column("direction", String(8), nullable=False),  # in, out
    Column("amount", Integer, nullable=False),
    Column("user_id", BigInteger),
    Column("partner", String(32), nullable=False),  # the partner's type/transaction_type
    Column("invoice_payload", String(128)),
    Column("problem", String(256), nullable=False),
    Column("transaction_date", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    UniqueConstraint("transaction_id", "direction"),
)

# --- the bot's conversation state (aiogram FSM) without Redis: bot.fsm.SqlStorage -------

fsm_states = Table(
    "fsm_states",
    metadata,
    # bot, chat, thread, user, business connection and destiny (bot.fsm.TableKeyBuilder).
    Column("key", String(512), primary_key=True),
    Column("state", Text),
    Column("data", Text, nullable=False, server_default="{}"),  # a JSON object
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_fsm_states_updated_at", "updated_at"),  # pruning idle conversations
)
