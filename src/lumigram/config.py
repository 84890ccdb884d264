"""Runtime configuration, read from the environment and ``.env``.

A bad value stops start-up with one line naming the setting and how to fix
it (see ``ConfigError``); secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from lumigram.domain.money import Package, parse_packages
from lumigram.domain.subscriptions import Perks, Tier, tier_problem
from lumigram.domain.users import SUPPORTED_LANGUAGES

# Telegram tokens look like "<bot id>:<35 url-safe characters>".
TOKEN_PATTERN = re.compile(r"^\d{5,16}:[A-Za-z0-9_-]{30,64}$")
# setWebhook's secret_token: "1-256 characters. Only characters A-Z, a-z, 0-9, _ and -".
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
TELEGRAM_MODES = ("polling", "webhook")

HINTS: dict[str, str] = {
    "BOT_TOKEN": (
        "get a token from @BotFather in Telegram (/newbot) and put "
        "BOT_TOKEN=<token> in .env or the environment"
    ),
    "ADMIN_IDS": "a comma-separated list of numeric Telegram user ids, e.g. ADMIN_IDS=12345,67890",
    "DATABASE_URL": (
        "use sqlite+aiosqlite:///./data/lumigram.db or "
        "postgresql+asyncpg://user:password@host:5432/dbname"
    ),
    "DEFAULT_LANGUAGE": f"one of: {', '.join(SUPPORTED_LANGUAGES)}",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
    "TELEGRAM_API_BASE": "an http(s) URL such as https://api.telegram.org or http://127.0.0.1:8081",
    "CATALOG_FILE": "the path of a TOML file with model overrides (see docs/models.md)",
    "CREDIT_PACKAGES": "credits:stars pairs, comma-separated, e.g. CREDIT_PACKAGES=10:100,50:450",
    "SUBSCRIPTION_TIERS": (
        'a JSON list such as [{"id":"basic","name":"Basic","stars":250,"images":100}] '
        "(see docs/money.md); [] turns subscriptions off"
    ),
    "HTTP_PORT": "a TCP port 1-65535 (0: any free port), e.g. HTTP_PORT=8080",
    "TELEGRAM_MODE": "polling (the default) or webhook",
    "PUBLIC_BASE_URL": (
        "the https URL Telegram reaches this server at (behind your TLS proxy), "
        "e.g. PUBLIC_BASE_URL=https://bot.example.com; needed with TELEGRAM_MODE=webhook"
    ),
    "WEBHOOK_SECRET": (
        "1-256 characters of A-Z, a-z, 0-9, _ and -, e.g. the output of "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`; "
        "needed with TELEGRAM_MODE=webhook"
    ),
    "WEBHOOK_MAX_CONNECTIONS": "a number from 1 to 100",
}


NOT_SET = "not set"  # an empty value in .env means the same as no value


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line, no secrets)."""


class DatabaseSettings(BaseSettings):
    """What the database commands (``migrate``, ``ledger verify``) need: no bot token."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/lumigram.db")
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("unsupported database driver")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("unknown log level")
        return value

    def masked(self) -> dict[str, str]:
        """Every setting as text with secrets masked, for ``lumigram check-config``."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                shown[name.upper()] = "(not set)"
            elif name == "database_url":
                shown[name.upper()] = mask_url(value.get_secret_value())
            elif isinstance(value, SecretStr):
                shown[name.upper()] = mask_secret(value.get_secret_value())
            elif isinstance(value, frozenset):
                shown[name.upper()] = ",".join(str(item) for item in sorted(value))
            else:
                shown[name.upper()] = str(value)
        return shown


class TierSetting(BaseModel):
    """One subscription tier as the operator writes it (SUBSCRIPTION_TIERS)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    stars: int = Field(ge=1, le=10000)
    images: int = Field(ge=1, le=100000)
    max_outputs: int = Field(default=4, ge=1, le=4)
    max_active_jobs: int = Field(default=2, ge=1, le=20)
    premium_models: bool = False
    priority: int = Field(default=1, ge=0, le=100)


# An allowance image pays for any allowed model at its standard settings, so a tier's
# Stars per image (at STAR_USD_RATE) must exceed the dearest such image: Basic
# 250 / 30 = 8.3 Stars ($0.108) > GPT Image 1 with 4 references ($0.082); Pro
# 750 / 50 = 15 Stars ($0.195) > Nano Banana Pro ($0.15). `lumigram check-config`.
DEFAULT_TIERS = [
    TierSetting(id="basic", name="Basic", stars=250, images=30, max_outputs=3, max_active_jobs=2),
    TierSetting(
        id="pro",
        name="Pro",
        stars=750,
        images=50,
        max_outputs=4,
        max_active_jobs=3,
        premium_models=True,
        priority=2,
    ),
]


class Settings(DatabaseSettings):
    bot_token: SecretStr
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    default_language: str = "en"
    telegram_api_base: str = "https://api.telegram.org"
    # Per-user throttling: at most `throttle_rate` updates a second, bursts of `throttle_burst`.
    throttle_rate: float = Field(default=2.0, gt=0)
    throttle_burst: int = Field(default=5, ge=1)
    # A user seen again within this many seconds is not written to the database again.
    last_seen_resolution: int = Field(default=300, ge=0)

    # --- generation -----------------------------------------------------------
    # A provider is switched on by putting in its key; the demo provider is always on.
    replicate_api_token: SecretStr | None = None
    replicate_base_url: str = "https://api.replicate.com"
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    hf_token: SecretStr | None = None
    hf_base_url: str = "https://router.huggingface.co"
    # KIE.ai video models (docs/video.md); the seed bots' names for the key work too.
    kie_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("kie_api_key", "kie_ai_api_key", "brs_ai_api_key"),
    )
    kie_base_url: str = "https://api.kie.ai"
    kie_upload_base_url: str = "https://kieai.redpandaai.co"
    # The account's webhookHmacKey (KIE dashboard): callbacks are verified with it.
    kie_webhook_hmac_key: SecretStr | None = None
    provider_timeout: float = Field(default=120.0, gt=0)
    # The demo provider's pretend generation time in seconds, and its image size.
    demo_latency: float = Field(default=2.0, ge=0)
    demo_image_size: int = Field(default=1024, ge=64, le=4096)
    # An operator's additions/changes to the shipped model catalog (TOML).
    catalog_file: Path | None = None
    storage_dir: Path = Path("./data/files")
    max_prompt_length: int = Field(default=1000, ge=10, le=4000)
    max_active_jobs: int = Field(default=1, ge=1, le=20)
    worker_concurrency: int = Field(default=8, ge=1, le=512)
    provider_concurrency: int = Field(default=8, ge=1, le=512)
    # Seconds between sweeps for jobs whose next step is due (lost messages, restarts).
    sweep_interval: float = Field(default=5.0, gt=0)
    # Transient provider failures: tries per job, and the first back-off in seconds (doubling).
    job_max_attempts: int = Field(default=4, ge=1, le=20)
    job_retry_delay: float = Field(default=2.0, ge=0)
    # A job that has no result after this many seconds is stopped.
    job_deadline: int = Field(default=900, ge=10)

    # --- money (docs/money.md) -------------------------------------------------
    # Free images for every new user, counted from successful generations.
    free_trial_images: int = Field(default=3, ge=0, le=1000)
    # What one Star earns the operator in US dollars (Telegram's payout rate): the base of
    # the margins `lumigram check-config` shows. Paying per image costs the credit price at
    # the dearest package rate (a model's own `stars` in the catalog wins).
    star_usd_rate: float = Field(default=0.013, gt=0, le=10)
    # Credits per image added for a custom prompt (a model's `custom_surcharge` wins).
    custom_prompt_surcharge: int = Field(default=0, ge=0, le=10000)
    credit_packages: str = "100:100,500:450,1200:1000"
    subscription_tiers: list[TierSetting] = Field(default_factory=lambda: list(DEFAULT_TIERS))
    # What users without a subscription may do.
    free_max_outputs: int = Field(default=2, ge=1, le=4)
    # A referrer earns this share of the credits each person they invited buys.
    referral_percent: int = Field(default=10, ge=0, le=100)
    referral_every_payment: bool = True  # false: only the first payment earns a bonus
    # Where users reach a human about payments: @username, t.me link or e-mail.
    support_contact: str = ""
    # Seconds between reconciliations with Telegram's record of Star transactions
    # (getStarTransactions): payments whose update was lost are recorded.
    stars_reconcile_interval: float = Field(default=60.0, gt=0, le=86400)

    # --- HTTP server and Telegram delivery (docs/http.md) -------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port
    # polling: getUpdates (the webhook is deleted first); webhook: Telegram POSTs updates
    # to PUBLIC_BASE_URL/telegram/webhook, checked against WEBHOOK_SECRET.
    telegram_mode: str = "polling"
    public_base_url: str = Field(default="", validate_default=True)
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    webhook_max_connections: int = Field(default=40, ge=1, le=100)
    # Providers with webhooks (Replicate) POST finished jobs to
    # PUBLIC_BASE_URL/callbacks/<provider>, which wakes the job before its next poll.
    provider_callbacks: bool = True

    # --- the API under /v1 (docs/api.md) ---------------------------------------------
    # Requests per minute per API key (sustained), and how many a key may send at once
    # (the bucket's size); past them a request gets 429 with Retry-After.
    api_rate_limit: int = Field(default=60, ge=1, le=100000)
    api_rate_burst: int = Field(default=20, ge=1, le=100000)
    # Accept callback_url and reference_urls on localhost and loopback, private and
    # link-local addresses (local setups, tests); off, such URLs are refused.
    api_callback_private_hosts: bool = False

    # --- scale-out (docs/scale-out.md) ------------------------------------------------
    # Redis: job ids go to `lumigram worker` processes through a Redis stream (taskiq),
    # conversation state and per-user order are shared by bot replicas, and the limits
    # (throttling, provider caps, Telegram's flood limits) hold across processes.
    # Unset: the in-process queue and per-process limits of the embedded mode.
    redis_url: SecretStr | None = None
    # A worker's hold on a job's step; a long step renews it, and a dead worker's jobs
    # are taken over once it expires.
    lease_seconds: float = Field(default=30.0, ge=5, le=3600)
    # On SIGTERM a worker stops taking steps and gives the running ones this long to
    # finish; what is still running then is handed back to the other workers.
    shutdown_grace: float = Field(default=20.0, ge=0, le=600)
    # Calls per second to each provider, all workers together (0: no limit beyond
    # PROVIDER_CONCURRENCY, which is also shared by the workers when Redis is set).
    provider_rate_limit: float = Field(default=0.0, ge=0, le=10000)
    # Outgoing Bot API calls of all processes together: per second overall, and per
    # chat (Telegram's limits are about 30/s and 1/s per chat; bursts are allowed).
    telegram_rate_limit: float = Field(default=30.0, gt=0, le=10000)
    telegram_chat_rate_limit: float = Field(default=1.0, gt=0, le=1000)
    telegram_chat_burst: int = Field(default=3, ge=1, le=100)
    # Where result and reference files live: a local folder (STORAGE_DIR), or
    # s3://bucket/prefix on any S3-compatible store (AWS, MinIO, R2, ...).
    storage_url: str = Field(default="", validate_default=True)
    s3_endpoint_url: str = ""  # empty: AWS's own endpoint for S3_REGION
    # The endpoint in presigned URLs, when API clients and providers reach the store by
    # another address than Lumigram does (empty: S3_ENDPOINT_URL).
    s3_public_endpoint_url: str = ""
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = Field(default=None, validate_default=True)
    s3_region: str = "us-east-1"
    # How long presigned download URLs (API downloads, provider inputs) stay valid.
    s3_presign_seconds: int = Field(default=3600, ge=60, le=604800)

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$", value):
            raise ValueError("must be empty (the local STORAGE_DIR) or s3://bucket[/prefix]")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.match(r"^(redis|rediss|unix)://", value.get_secret_value().strip()):
            raise ValueError("must be a redis://host:port/db (or rediss://, unix://) URL")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("s3_secret_access_key")
    @classmethod
    def _s3_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("storage_url") and (info.data.get("s3_access_key_id") is None) != (
            value is None
        ):
            raise ValueError(
                "set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither "
                "(neither: the usual AWS credential chain)"
            )
        return value

    @field_validator("telegram_mode")
    @classmethod
    def _telegram_mode(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in TELEGRAM_MODES:
            raise ValueError("unknown mode")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().rstrip("/")
        if not value:
            if info.data.get("telegram_mode") == "webhook":
                raise ValueError(NOT_SET)
            return value
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value, re.IGNORECASE):
            raise ValueError("must be an http(s) URL without a query")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        secret = value.get_secret_value().strip() if value is not None else ""
        if not secret:
            if info.data.get("telegram_mode") == "webhook":
                raise ValueError(NOT_SET)
            return None
        if not WEBHOOK_SECRET_PATTERN.match(secret):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return SecretStr(secret)

    @property
    def webhook_url(self) -> str:
        return f"{self.public_base_url}/telegram/webhook"

    @field_validator("credit_packages")
    @classmethod
    def _packages(cls, value: str) -> str:
        seen: dict[int, str] = {}
        for item in (part.strip() for part in value.split(",")):
            for package in parse_packages(item):  # raises ValueError naming the entry
                if package.credits in seen:
                    raise ValueError(
                        f"{item!r} and {seen[package.credits]!r} have the same number of credits"
                    )
                seen[package.credits] = item
        parse_packages(value)
        return value

    @field_validator("subscription_tiers", mode="before")
    @classmethod
    def _tier_entries(cls, value: Any) -> Any:
        """Word a bad tier as the operator wrote it: which tier, which field."""
        if not isinstance(value, list):
            shape = _JSON_KINDS.get(type(value), type(value).__name__)
            raise ValueError(f"must be a JSON list of tiers ([...]), not {shape}")
        for index, item in enumerate(value, start=1):
            if isinstance(item, TierSetting):
                continue
            if not isinstance(item, dict):
                raise ValueError(f"tier {index} is not a JSON object")
            try:
                TierSetting.model_validate(item)
            except ValidationError as exc:
                raise ValueError(f"{_tier_label(index, item)}: {_field_problem(exc)}") from None
        return value

    @field_validator("subscription_tiers")
    @classmethod
    def _tiers(cls, value: list[TierSetting]) -> list[TierSetting]:
        problem = tier_problem(tuple(_tier(item, 1, 1) for item in value))
        if problem:
            raise ValueError(problem)
        return value

    def packages(self) -> tuple[Package, ...]:
        return parse_packages(self.credit_packages)

    def tiers(self) -> tuple[Tier, ...]:
        return tuple(
            _tier(item, self.max_active_jobs, self.free_max_outputs)
            for item in self.subscription_tiers
        )

    def free_perks(self) -> Perks:
        return Perks(
            max_outputs=self.free_max_outputs,
            max_active_jobs=self.max_active_jobs,
            # With no tiers for sale nobody could reach premium models: open them to all.
            premium_models=not self.subscription_tiers,
            priority=0,
        )

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError(NOT_SET)
        if not TOKEN_PATTERN.match(value.get_secret_value().strip()):
            raise ValueError("does not look like a bot token")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, int):
            return frozenset({value})
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            if not all(part.lstrip("-").isdigit() for part in parts if part):
                raise ValueError("must be numeric user ids")
            return frozenset(int(part) for part in parts if part)
        return value

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError("unsupported language")
        return value

    @field_validator(
        "telegram_api_base",
        "replicate_base_url",
        "openai_base_url",
        "gemini_base_url",
        "hf_base_url",
        "kie_base_url",
        "kie_upload_base_url",
    )
    @classmethod
    def _api_base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    def provider_keys(self) -> dict[str, str]:
        """The configured providers and their keys (empty keys count as not configured)."""
        keys = {
            "replicate": self.replicate_api_token,
            "openai": self.openai_api_key,
            "gemini": self.gemini_api_key,
            "huggingface": self.hf_token,
            "kie": self.kie_api_key,
        }
        return {
            name: key.get_secret_value().strip()
            for name, key in keys.items()
            if key is not None and key.get_secret_value().strip()
        }

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for in-memory or other engines)."""
        url = self.database_url.get_secret_value()
        if not self.is_sqlite:
            return None
        path = url.split(":///", 1)[1] if ":///" in url else ""
        return Path(path) if path and path != ":memory:" else None


_JSON_KINDS: dict[type, str] = {
    dict: "a single object",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
    type(None): "null",
}


def _tier_label(index: int, item: dict[str, Any]) -> str:
    tier_id = item.get("id")
    return f"tier {index} (id {tier_id!r})" if isinstance(tier_id, str) else f"tier {index}"


def _field_problem(exc: ValidationError) -> str:
    """The first problem of a nested model, naming its field (no input is echoed)."""
    error = exc.errors(include_input=False)[0]
    field = ".".join(str(part) for part in error["loc"]) or "value"
    if error["type"] == "missing":
        return f"field {field!r} is missing"
    if error["type"] == "extra_forbidden":
        return f"unknown field {field!r} (check the spelling)"
    return f"field {field!r}: {_message(error)}"


def _message(error: ErrorDetails) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _tier(item: TierSetting, base_jobs: int, base_outputs: int) -> Tier:
    """A tier never gives less than a user without one has."""
    return Tier(
        id=item.id,
        name=item.name,
        stars=item.stars,
        images=item.images,
        perks=Perks(
            max_outputs=max(item.max_outputs, base_outputs),
            max_active_jobs=max(item.max_active_jobs, base_jobs),
            premium_models=item.premium_models,
            priority=item.priority,
        ),
    )


def mask_secret(secret: str) -> str:
    if not secret:
        return "(not set)"
    return f"{secret[:4]}…({len(secret)} chars)" if len(secret) > 8 else "****"


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", url)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings or raise ConfigError with one operator-friendly line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
    except SettingsError as exc:  # a complex (JSON) value that does not even decode
        raise ConfigError(describe_source_error(exc)) from None


def load_database_settings() -> DatabaseSettings:
    """The settings of the database commands, which need no bot token."""
    try:
        return DatabaseSettings()
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
    except SettingsError as exc:
        raise ConfigError(describe_source_error(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line for the first problem: the setting, what is wrong, and how to fix it."""
    error = exc.errors(include_input=False)[0]
    loc = error["loc"]
    name = str(loc[0]).upper() if loc else "configuration"
    message = _message(error)
    inner = ".".join(str(part) for part in loc[1:])
    if (error["type"] == "missing" and not inner) or message == NOT_SET:
        problem = "is not set"
    elif error["type"] == "missing":
        problem = f"is invalid: {inner!r} is missing"
    elif inner:
        problem = f"is invalid: {inner}: {message}"
    else:
        problem = f"is invalid: {message}"
    return _line(name, problem)


# pydantic-settings' wording: 'error parsing value for field "x" from source "EnvSettingsSource"'
_SOURCE_ERROR = re.compile(r'field "(?P<field>[^"]+)" from source "(?P<source>[^"]+)"')


def describe_source_error(exc: SettingsError) -> str:
    """pydantic-settings could not even read a value (bad JSON in a list setting, say)."""
    match = _SOURCE_ERROR.search(str(exc))
    name = match["field"].upper() if match else "configuration"
    where = " (in .env)" if match and "DotEnv" in match["source"] else ""
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        where_in = (
            f"character {cause.colno}"
            if cause.lineno == 1
            else f"line {cause.lineno} column {cause.colno}"
        )
        problem = f"is not valid JSON: {cause.msg} at {where_in}"
    else:
        problem = f"cannot be read ({type(cause or exc).__name__})"
    return _line(name + where, problem, hint=HINTS.get(name))


def _line(name: str, problem: str, *, hint: str | None = None) -> str:
    hint = hint if hint is not None else HINTS.get(name)
    return f"Configuration error: {name} {problem}" + (f" — {hint}" if hint else "")
