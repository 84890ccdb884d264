"""The sandbox's moving parts: the emulator, the real bot as a child process, the fakes.

:class:`Sandbox` owns a data folder (``sandbox.json``: the bot's token and the simulated
users; ``lumigram.db`` and ``files/``: the bot's own data; ``bot.log``: its output), a
:class:`~lumigram.emulator.TelegramEmulator` on a free port, and the bot started as
``lumigram run`` does it (``python -m lumigram run``) with ``TELEGRAM_API_BASE``
pointing at the emulator. The web server (``server.py``) drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lumigram.emulator import FloodLimits, SimUser, TelegramEmulator
from lumigram.emulator.state import BotState, ChatState
from lumigram.fakes.base import FakeServer

log = logging.getLogger(__name__)

JSON = dict[str, Any]
STATE_FILE = "sandbox.json"
BOT_USERNAME = "lumigram_bot"
BOT_NAME = "Lumigram"
FIRST_USER = (1001, "Alex", "en")
STARTING_STARS = 5000  # what a new simulated user has to spend (top up with /stars)
STOP_TIMEOUT = 30.0  # SIGTERM, then this long, then SIGKILL
FAKE_KEY = "sandbox-fake-key"


class SandboxError(Exception):
    """A request the sandbox refuses (a 4xx of the API); ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SandboxUser:
    """A simulated user as the sandbox keeps it (the emulator has no Stars balances)."""

    sim: SimUser
    is_admin: bool = False
    stars: int = STARTING_STARS

    @property
    def id(self) -> int:
        return self.sim.id

    @property
    def chat(self) -> ChatState:
        return self.sim.chat

    def to_json(self) -> JSON:
        profile = self.sim.profile
        return {
            "id": profile.id,
            "first_name": profile.first_name,
            "language_code": profile.language_code,
            "is_admin": self.is_admin,
            "blocked": self.chat.blocked,
            "stars": self.stars,
            "reply_keyboard": [list(row) for row in self.chat.reply_keyboard],
        }

    def to_saved(self) -> JSON:
        return self.to_json() | {"next_message_id": self.chat.next_message_id}


@dataclass
class Fakes:
    """The local fakes of the providers (``--fake-providers``), by provider name."""

    servers: dict[str, FakeServer] = field(default_factory=dict)

    async def start(self) -> dict[str, str]:
        """Start every fake; returns the bot's environment for them."""
        from lumigram.fakes.gemini import FakeGemini
        from lumigram.fakes.huggingface import FakeHuggingFace
        from lumigram.fakes.kie import FakeKie
        from lumigram.fakes.openai_images import FakeOpenAI
        from lumigram.fakes.replicate import FakeReplicate

        self.servers = {
            "replicate": FakeReplicate(api_key=FAKE_KEY, run_seconds=2.0),
            "openai": FakeOpenAI(api_key=FAKE_KEY),
            "gemini": FakeGemini(api_key=FAKE_KEY),
            "huggingface": FakeHuggingFace(api_key=FAKE_KEY),
            "kie": FakeKie(api_key=FAKE_KEY, run_seconds=3.0),
        }
        for server in self.servers.values():
            await server.start()
        urls = {name: server.base_url for name, server in self.servers.items()}
        return {
            "REPLICATE_API_TOKEN": FAKE_KEY,
            "REPLICATE_BASE_URL": urls["replicate"],
            "OPENAI_API_KEY": FAKE_KEY,
            "OPENAI_BASE_URL": urls["openai"] + "/v1",
            "GEMINI_API_KEY": FAKE_KEY,
            "GEMINI_BASE_URL": urls["gemini"],
            "HF_TOKEN": FAKE_KEY,
            "HF_BASE_URL": urls["huggingface"],
            "KIE_API_KEY": FAKE_KEY,
            "KIE_BASE_URL": urls["kie"],
            "KIE_UPLOAD_BASE_URL": urls["kie"],
        }

    async def stop(self) -> None:
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                await server.stop()


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    """Linux: the bot gets SIGTERM when the sandbox dies, even by SIGKILL, so that no
    orphaned bot keeps polling (and writing its database) after the sandbox is gone."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class BotProcess:
    """The bot as a child process: ``python -m lumigram run``, output to ``bot.log``."""

    def __init__(self, log_path: Path, cwd: Path | None) -> None:
        self.log_path = log_path
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.exit_code: int | None = None
        self._log_file: IO[bytes] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, env: dict[str, str]) -> None:
        if self.running:
            raise RuntimeError("the bot is running already")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- sandbox: bot started at {time.ctime()}\n".encode())
        self._log_file.flush()
        self.exit_code = None
        self.started_at = time.time()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lumigram",
            "run",
            env=env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches the sandbox, which stops the bot
            preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
        )

    def poll(self) -> bool:
        """Notice an exit (a crash or a start-up error shows in ``bot.log``); True the
        first time an exit is seen."""
        if self._stopping or self.process is None or self.process.returncode is None:
            return False
        if self._log_file is None:  # seen already
            return False
        self.exit_code = self.process.returncode
        self._close_log()
        return True

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_bytes()[-4096:].decode(errors="replace").splitlines()
            return next((line for line in reversed(lines) if line.strip()), "")
        return ""

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        process = self.process
        if process is None:
            return
        self._stopping = True
        try:
            await self._terminate(process, timeout)
        finally:
            self._stopping = False
        self.exit_code = process.returncode
        self.process = None
        self._close_log()

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process, timeout: float) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning("the bot did not stop within %.0fs: killing it", timeout)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None


def _new_token() -> str:
    bot_id = 7_000_000_000 + secrets.randbelow(1_000_000)
    secret = secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
    return f"{bot_id}:AA{secret}"


def _register_bot(emulator: TelegramEmulator, token: str) -> BotState:
    """The bot with a token of our choosing: the same token on every start of a data
    folder, so that the bot's database (which knows the bot by its id) stays valid."""
    state = emulator.state
    bot_id = int(token.split(":", 1)[0])
    bot = BotState(bot_id, token, BOT_USERNAME, BOT_NAME, state.spec.update_types())
    state.bots_by_token[token] = bot
    state.bots_by_id[bot_id] = bot
    return bot


class Sandbox:
    """The emulator, the bot process, the fakes and the simulated users of one data folder."""

    def __init__(
        self,
        data_dir: Path,
        *,
        fake_providers: bool = False,
        cwd: Path | None = None,
        base_env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.fake_providers = fake_providers
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.extra_env = dict(extra_env or {})
        self.emulator = TelegramEmulator()
        self.fakes = Fakes()
        self.fake_env: dict[str, str] = {}
        self.bot_process = BotProcess(self.data_dir / "bot.log", cwd)
        self.users: dict[int, SandboxUser] = {}
        self.token = ""
        self.restarts = 0
        self.flood_enabled = True
        self._saved: JSON | None = None
        self._restart_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def _load(self) -> JSON:
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise SandboxError(f"{self.state_path}: cannot read it ({error})") from None
        return saved if isinstance(saved, dict) else {}

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        saved = self._load()
        self.token = str(saved.get("token") or _new_token())
        self.flood_enabled = bool(saved.get("flood", True))
        self.emulator.set_flood(FloodLimits() if self.flood_enabled else FloodLimits.disabled())
        await self.emulator.start("127.0.0.1", 0)
        _register_bot(self.emulator, self.token)
        for item in saved.get("users") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                self._restore_user(item)
        if not self.users:
            user_id, name, language = FIRST_USER
            self.add_user(name, language, user_id=user_id, is_admin=True)
        if self.fake_providers:
            self.fake_env = await self.fakes.start()
        self.save()
        await self.bot_process.start(self.bot_env())

    async def stop(self) -> None:
        await self.bot_process.stop()
        self.save()
        await self.fakes.stop()
        await self.emulator.stop()

    async def restart_bot(self) -> None:
        async with self._restart_lock:
            await self.bot_process.stop()
            self.restarts += 1
            await self.bot_process.start(self.bot_env())

    def bot_env(self) -> dict[str, str]:
        data = self.data_dir
        admins = ",".join(str(u.id) for u in self.users.values() if u.is_admin)
        env = self.base_env | self.fake_env
        env.update(
            BOT_TOKEN=self.token,
            TELEGRAM_API_BASE=self.emulator.base_url,
            TELEGRAM_MODE="polling",
            DATABASE_URL=f"sqlite+aiosqlite:///{data / 'lumigram.db'}",
            STORAGE_DIR=str(data / "files"),
            STORAGE_URL="",
            REDIS_URL="",
            HTTP_PORT="0",
            DEMO_LATENCY="1",
            ADMIN_IDS=admins,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    @property
    def bot_ready(self) -> bool:
        """The bot process runs and has started polling (since its last start)."""
        if not self.bot_process.running:
            return False
        since = self.bot_process.started_at
        return any(
            r.at >= since and r.method in ("deleteWebhook", "getUpdates")
            for r in reversed(self.emulator.requests[-200:])
        )

    # -- persistence ------------------------------------------------------------------------

    def saved_state(self) -> JSON:
        return {
            "version": 1,
            "token": self.token,
            "flood": self.flood_enabled,
            "users": [user.to_saved() for user in self.users.values()],
        }

    def save(self) -> None:
        """Write ``sandbox.json`` if something in it changed (atomically)."""
        current = self.saved_state()
        if current == self._saved:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(current, ensure_ascii=False, indent=2), encoding="utf-8")
        temporary.replace(self.state_path)
        self._saved = current

    def _restore_user(self, item: JSON) -> None:
        user = self.add_user(
            str(item.get("first_name") or "User"),
            item.get("language_code") if isinstance(item.get("language_code"), str) else None,
            user_id=item["id"],
            is_admin=bool(item.get("is_admin")),
        )
        stars = item.get("stars")
        if isinstance(stars, int):
            user.stars = stars
        # Blocked as before, without telling the bot again (it was told then).
        user.chat.blocked = bool(item.get("blocked"))
        next_id = item.get("next_message_id")
        if isinstance(next_id, int) and next_id > user.chat.next_message_id:
            # Message ids go on where they stopped: the bot's database refers to old ones.
            user.chat.next_message_id = next_id

    # -- users ----------------------------------------------------------------------------------

    def add_user(
        self,
        first_name: str,
        language_code: str | None,
        *,
        user_id: int | None = None,
        is_admin: bool = False,
    ) -> SandboxUser:
        first_name = first_name.strip()
        if not 1 <= len(first_name) <= 64:
            raise SandboxError("first_name must be 1-64 characters")
        if language_code is not None:
            language_code = language_code.strip() or None
            if language_code is not None and (
                len(language_code) > 35 or not language_code.replace("-", "").isalnum()
            ):
                raise SandboxError("language_code must be an IETF language tag such as en or ru")
        if user_id is None:
            user_id = max([FIRST_USER[0] - 1, *self.users]) + 1
        if user_id in self.users:
            raise SandboxError(f"user {user_id} exists already", 409)
        sim = self.emulator.user(user_id, first_name, language_code, token=self.token)
        user = SandboxUser(sim, is_admin=is_admin)
        self.users[user_id] = user
        return user

    def get_user(self, user_id: int) -> SandboxUser:
        user = self.users.get(user_id)
        if user is None:
            raise SandboxError(f"no user {user_id}", 404)
        return user

    async def set_admin(self, user_id: int, admin: bool) -> SandboxUser:
        user = self.get_user(user_id)
        if user.is_admin != admin:
            user.is_admin = admin
            self.save()
            await self.restart_bot()  # ADMIN_IDS is read at start
        return user

    def set_blocked(self, user_id: int, blocked: bool) -> SandboxUser:
        user = self.get_user(user_id)
        if blocked:
            user.sim.block_bot()
        else:
            user.sim.unblock_bot()
        return user

    def add_stars(self, user_id: int, amount: int) -> SandboxUser:
        user = self.get_user(user_id)
        if not 1 <= amount <= 1_000_000:
            raise SandboxError("amount must be 1-1000000 Stars")
        user.stars += amount
        return user

    def set_flood(self, enabled: bool) -> None:
        self.flood_enabled = enabled
        self.emulator.set_flood(FloodLimits() if enabled else FloodLimits.disabled())

    # -- payments ---------------------------------------------------------------------------------

    @property
    def bot(self) -> BotState:
        return self.emulator.bot(self.token)

    def invoice_links(self) -> dict[str, JSON]:
        """Invoice links the bot made (createInvoiceLink), as the UI shows them."""
        bot = self.bot
        links: dict[str, JSON] = {}
        for url, invoice_id in bot.invoice_links.items():
            invoice = bot.invoices.get(invoice_id)
            if invoice is not None:
                links[url] = {
                    "title": invoice.title,
                    "description": invoice.description,
                    "currency": invoice.currency,
                    "total_amount": invoice.amount,
                    "subscription_period": invoice.subscription_period,
                }
        return links

    async def pay(self, user_id: int, message_id: int | None, url: str | None) -> JSON:
        """Pay an invoice message (or an invoice link) with the user's Stars."""
        user = self.get_user(user_id)
        bot = self.bot
        if url is not None:
            invoice_id = bot.invoice_links.get(url)
            if invoice_id is None:
                raise SandboxError(f"{url!r} is not an invoice link of the bot", 404)
        else:
            stored = user.chat.messages.get(message_id or 0)
            if stored is None:
                raise SandboxError(f"no message {message_id} in the chat", 404)
            if stored.invoice_id is None:
                raise SandboxError(f"message {message_id} is not an invoice")
            invoice_id = stored.invoice_id
        invoice = bot.invoices[invoice_id]
        if user.stars < invoice.amount:
            return {
                "ok": False,
                "error_message": (
                    f"Not enough Stars: the invoice is {invoice.amount}, the balance "
                    f"{user.stars} (top up with POST /api/users/{user_id}/stars)"
                ),
                "reason": "insufficient_stars",
                "charge_id": None,
            }
        user.stars -= invoice.amount  # held while the bot decides, as the app does
        try:
            if url is not None:
                result = await user.sim.pay_link(url)
            else:
                from lumigram.emulator import ChatMessage

                raw = user.chat.messages[message_id or 0].raw
                result = await user.sim.pay(ChatMessage.from_raw(raw, from_bot=True))
        except BaseException:
            user.stars += invoice.amount
            raise
        if not result.ok:
            user.stars += invoice.amount
        return {
            "ok": result.ok,
            "error_message": result.error_message,
            "reason": result.reason,
            "charge_id": result.charge_id,
        }

    def subscriptions(self, user_id: int) -> list[JSON]:
        """The user's Stars subscriptions (by their first charge), as the app lists them."""
        user = self.get_user(user_id)
        bot = self.bot
        result: list[JSON] = []
        for charge in bot.charges.values():
            if (
                charge.user_id != user.id
                or charge.first_charge_id
                or not charge.subscription_period
            ):
                continue
            invoice = bot.invoices.get(charge.invoice_id)
            renewals = [c for c in bot.charges.values() if c.first_charge_id == charge.charge_id]
            result.append(
                {
                    "charge_id": charge.charge_id,
                    "title": invoice.title if invoice is not None else charge.payload,
                    "amount": charge.amount,
                    "period": charge.subscription_period,
                    "expiration_date": charge.expiration_date,
                    "canceled": charge.canceled,
                    "refunded": charge.refunded,
                    "renewals": len(renewals),
                }
            )
        return result

    async def change_subscription(self, user_id: int, charge_id: str, action: str) -> JSON:
        """``cancel`` / ``enable`` (the user in the app), ``renew`` (the next period is
        charged now) or ``fail_renewal`` (the renewal payment fails)."""
        user = self.get_user(user_id)
        charge = self.bot.charges.get(charge_id)
        if charge is None or charge.user_id != user.id or not charge.subscription_period:
            raise SandboxError(f"no subscription {charge_id!r} of user {user.id}", 404)
        if action in ("cancel", "enable"):
            await user.sim.change_subscription(
                charge_id, "canceled" if action == "cancel" else "active"
            )
            return {"ok": True, "error_message": None}
        if action not in ("renew", "fail_renewal"):
            raise SandboxError("action must be cancel, enable, renew or fail_renewal")
        if action == "renew" and user.stars < charge.amount:
            return {"ok": False, "error_message": f"Not enough Stars: the balance is {user.stars}"}
        result = await user.sim.renew_subscription(charge_id, fail=action == "fail_renewal")
        if result.ok:
            user.stars -= charge.amount
        return {"ok": result.ok, "error_message": result.error_message, "reason": result.reason}

    def note_refund(self, params: JSON) -> None:
        """A successful refundStarPayment gives the user the Stars back."""
        charge = self.bot.charges.get(str(params.get("telegram_payment_charge_id")))
        user = self.users.get(charge.user_id) if charge is not None else None
        if charge is not None and user is not None:
            user.stars += charge.amount

    # -- inspection -------------------------------------------------------------------------------

    def commands(self, language: str | None, user_id: int | None) -> list[JSON]:
        """The command menu a user sees: the most specific scope first, each in the
        user's language, else without a language (Telegram's order)."""
        bot = self.bot
        scopes = ["default"]
        if user_id is not None:
            scopes = [f"chat:{user_id}", "all_private_chats", "default"]
        for scope in scopes:
            for lang in ([language] if language else []) + [""]:
                commands = bot.commands.get((scope, lang))
                if commands:
                    return [dict(c) for c in commands]
        return []

    def state_json(self) -> JSON:
        return {
            "bot": {
                "username": BOT_USERNAME,
                "running": self.bot_process.running,
                "ready": self.bot_ready,
                "restarts": self.restarts,
                "exit_code": self.bot_process.exit_code,
                "log": str(self.bot_process.log_path),
            },
            "users": [user.to_json() for user in self.users.values()],
            "flood": {"enabled": self.flood_enabled},
            "clock_offset": 0,
            "fake_providers": sorted(self.fakes.servers),
        }
