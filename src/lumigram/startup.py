"""Start-up checks that explain themselves.

Every problem found while starting (``lumigram run``, ``migrate``,
``check-config``) becomes a ``StartupError``: one line for the operator that
names the setting or the service and what to do; the CLI prints it and exits
with code 2, never with a traceback. Passwords and tokens never appear in it.

- the model catalog (``CATALOG_FILE``): the loader's problems condensed to the
  first one plus "(and N more)";
- the database: a few quick tries (``check_database``), then host:port and the
  driver's reason;
- Telegram: a token it rejects is final; an unreachable Bot API is retried
  with back-off (``wait_for_telegram``), one WARNING line per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from lumigram.catalog import Catalog, CatalogError, load_catalog
from lumigram.db.migrate import UpgradeResult

if TYPE_CHECKING:  # aiogram takes seconds to import: only `run` and `--online` need it
    from aiogram import Bot
    from aiogram.exceptions import TelegramNetworkError
    from aiogram.types import User

log = logging.getLogger(__name__)

TOKEN_REJECTED = "BOT_TOKEN was rejected by Telegram: copy it again from @BotFather"  # noqa: S105
DATABASE_ATTEMPTS = 3  # tries over about 2 s: a server that is just starting gets a chance
DATABASE_RETRY_DELAY = 0.7  # seconds before the second try; doubled before the third
DATABASE_CONNECT_TIMEOUT = 5.0
TELEGRAM_TIMEOUT = 15.0  # one getMe at start-up; the session's own timeout is 60 s
TELEGRAM_FIRST_DELAY = 1.0
TELEGRAM_MAX_DELAY = 30.0
TELEGRAM_HINT = "check the network (or a proxy) and TELEGRAM_API_BASE"


class StartupError(Exception):
    """A problem that stops start-up, worded for the operator (one line, no secrets)."""


class TelegramUnreachableError(StartupError):
    """The Bot API did not answer (network, DNS, timeout, 5xx): worth trying again."""

    def __init__(self, api_base: str, reason: str) -> None:
        self.api_base = api_base
        self.reason = reason
        super().__init__(
            f"Telegram error: cannot reach the Bot API at {api_base} ({reason}) — {TELEGRAM_HINT}"
        )


# --- the model catalog ---------------------------------------------------------------


def catalog_problem(exc: CatalogError, catalog_file: Path | None) -> str:
    """The loader's message (sometimes a list, one problem a line) as one line."""
    cause = exc.__cause__
    if catalog_file is not None and isinstance(cause, OSError | UnicodeDecodeError):
        if isinstance(cause, UnicodeDecodeError):
            reason = "not UTF-8 text"
        else:
            reason = cause.strerror or type(cause).__name__
        return f"Catalog error: CATALOG_FILE {catalog_file} cannot be read ({reason}) — " + (
            "check the path (relative paths start in the working directory) or unset it"
        )
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]  # "invalid model catalog:" then one problem a line
    first = lines[0] if lines else "the catalog is invalid"
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    if catalog_file is None:
        hint = "the shipped catalog is broken: reinstall Lumigram"
    else:
        hint = f"fix CATALOG_FILE {catalog_file} (format: docs/generation.md) or unset it"
    return f"Catalog error: {first}{more} — {hint}"


def load_checked_catalog(catalog_file: Path | None) -> Catalog:
    try:
        return load_catalog(override=catalog_file)
    except CatalogError as exc:
        raise StartupError(catalog_problem(exc, catalog_file)) from None


# --- the database --------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseTarget:
    """What a DATABASE_URL points at, in words that hold no password."""

    backend: str
    where: str  # "127.0.0.1:5432" or the SQLite file
    sqlite_file: Path | None
    password: str | None

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"


def database_target(url: str) -> DatabaseTarget:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StartupError(
            "Configuration error: DATABASE_URL cannot be parsed — use "
            "sqlite+aiosqlite:///./data/lumigram.db or "
            "postgresql+asyncpg://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        path = Path(database) if database and database != ":memory:" else None
        return DatabaseTarget(backend, str(path or ":memory:"), path, None)
    host = parsed.host or "localhost"
    port = parsed.port or 5432
    return DatabaseTarget(backend, f"{host}:{port}", None, parsed.password)


def prepare_sqlite_directory(url: str) -> None:
    """Create the SQLite file's folder (as the engine would), or say why it cannot be."""
    target = database_target(url)
    if target.sqlite_file is None:
        return
    folder = target.sqlite_file.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"Database error: cannot create the folder {folder} for the SQLite database "
            f"({_not_a_folder(folder) or exc.strerror or type(exc).__name__}) — check "
            "DATABASE_URL and the folder's permissions"
        ) from None


def _not_a_folder(folder: Path) -> str | None:
    """'<path> is not a folder' when a file stands where a folder should be."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return None if folder.is_dir() else f"{folder} is a file, not a folder"


def sqlite_folder_problem(path: Path) -> str | None:
    """Why the SQLite file ``path`` could not be created, leaving nothing behind: the
    missing folders are created and removed again."""
    missing: list[Path] = []
    folder = path.parent.absolute()
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        if missing:
            missing[0].mkdir(parents=True)
        probe = path.parent / f".lumigram-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename or folder}"
    finally:
        for created in missing:
            with contextlib.suppress(OSError):
                created.rmdir()
    return None


def database_problem(exc: BaseException, url: str) -> str:
    """One line for a failed connection: where, the driver's reason, what to check."""
    target = database_target(url)
    reason = _mask(_database_reason(exc), target.password)
    if target.is_sqlite:
        return (
            f"Database error: cannot open the SQLite database {target.where} ({reason}) — "
            "check DATABASE_URL and the file's and folder's permissions"
        )
    if isinstance(exc, DBAPIError) and not isinstance(exc.orig, OSError):
        # The server answered, and said no: a wrong user, password or database name.
        return (
            f"Database error: {target.backend} at {target.where} refused the connection "
            f"({reason}) — check the user, password and database name in DATABASE_URL"
        )
    return (
        f"Database error: cannot connect to {target.backend} at {target.where} ({reason}) — "
        "check DATABASE_URL and that the server is running"
    )


def _database_reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, TimeoutError):
        return f"no answer within {DATABASE_CONNECT_TIMEOUT:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return first_line or type(exc).__name__


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno)
    # asyncio's "Multiple exceptions: [Errno 111] Connect call failed (...), ..." (IPv4 + IPv6)
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    if found:
        return os.strerror(int(found.group(1)))
    return str(exc).strip() or type(exc).__name__


def _mask(text_: str, password: str | None) -> str:
    return text_.replace(password, "****") if password else text_


async def check_database(
    engine: AsyncEngine, url: str, *, attempts: int = DATABASE_ATTEMPTS
) -> None:
    """Connect (a few quick tries) or raise StartupError saying where and why not.

    A SQLite file gets one try: waiting does not make a folder writable.
    """
    if database_target(url).is_sqlite:
        attempts = 1
    delay = DATABASE_RETRY_DELAY
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(DATABASE_CONNECT_TIMEOUT), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except Exception as exc:  # any driver's error: worded below, never a traceback
            if attempt == attempts:
                raise StartupError(database_problem(exc, url)) from None
            log.debug("database not reachable (try %d of %d): %r", attempt, attempts, exc)
        await asyncio.sleep(delay)
        delay *= 2


async def apply_migrations(engine: AsyncEngine, url: str) -> UpgradeResult:
    """``upgrade`` with its failures worded (a revision this version does not know, say)."""
    from alembic.util import CommandError

    from lumigram.db.migrate import upgrade

    try:
        return await upgrade(engine)
    except CommandError as exc:
        raise StartupError(
            f"Database error: cannot migrate the database ({_first_line(exc)}) — was it "
            "migrated by a newer version of Lumigram? Check DATABASE_URL"
        ) from None
    except DBAPIError as exc:
        password = database_target(url).password
        raise StartupError(
            f"Database error: a migration failed ({_mask(_database_reason(exc), password)}) — "
            "see docs/development.md (Migrations)"
        ) from None


async def migrate_database(url: str) -> UpgradeResult:
    """``lumigram migrate``: reach the database (a few tries), then bring it to head."""
    from lumigram.db.engine import create_engine

    prepare_sqlite_directory(url)
    engine = create_engine(url)
    try:
        await check_database(engine, url)
        return await apply_migrations(engine, url)
    finally:
        await engine.dispose()


async def reach_database(url: str) -> None:
    """Before ``lumigram run`` imports the bot: the folder of a SQLite file, a connection."""
    from lumigram.db.engine import create_engine

    prepare_sqlite_directory(url)
    engine = create_engine(url)
    try:
        await check_database(engine, url)
    finally:
        await engine.dispose()


async def inspect_database(url: str) -> str:
    """For ``check-config``: reach the database without changing it; how it stands."""
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    from lumigram.db.engine import create_engine
    from lumigram.db.migrate import applied_between, current_revision, head_revision

    target = database_target(url)
    if target.sqlite_file is not None and not target.sqlite_file.exists():
        problem = sqlite_folder_problem(target.sqlite_file)
        if problem:
            raise StartupError(
                f"Database error: the SQLite database {target.where} cannot be created "
                f"({problem}) — check DATABASE_URL and the folder's permissions"
            )
        return f"Database OK: SQLite file {target.where} (created on the first start)"
    engine = create_engine(url)
    try:
        await check_database(engine, url)
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    where = (
        f"SQLite file {target.where}" if target.is_sqlite else f"{target.backend} at {target.where}"
    )
    try:
        pending = applied_between(revision, head_revision())
    except (CommandError, RevisionError):
        raise StartupError(
            f"Database error: the database at {target.where} is at revision {revision}, "
            "which this version of Lumigram does not know — check DATABASE_URL"
        ) from None
    state = f"{pending} migration{'s' if pending != 1 else ''} to apply" if pending else "current"
    return f"Database OK: {where}, revision {revision or 'base'} ({state})"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- Telegram ------------------------------------------------------------------------


async def get_me(bot: Bot, api_base: str, *, timeout: float = TELEGRAM_TIMEOUT) -> User:
    """One getMe. A rejected token is final; an unreachable Bot API is TelegramUnreachableError."""
    from aiogram.exceptions import (
        ClientDecodeError,
        TelegramAPIError,
        TelegramNetworkError,
        TelegramNotFound,
        TelegramRetryAfter,
        TelegramServerError,
        TelegramUnauthorizedError,
    )

    try:
        async with asyncio.timeout(timeout):
            return await bot.me()
    except TimeoutError:
        raise _unreachable(api_base, f"no answer within {timeout:g} s") from None
    except TelegramUnauthorizedError:
        raise StartupError(TOKEN_REJECTED) from None
    except TelegramNetworkError as exc:
        raise _unreachable(api_base, _network_reason(exc)) from None
    except TelegramServerError as exc:
        raise _unreachable(api_base, f"server error: {exc.message}") from None
    except TelegramRetryAfter as exc:
        raise _unreachable(api_base, f"flood control, retry after {exc.retry_after} s") from None
    except ClientDecodeError:
        raise _unreachable(api_base, NOT_THE_BOT_API) from None
    except TelegramNotFound:
        raise _not_found(api_base) from None
    except TelegramAPIError as exc:
        raise _refused(exc.message) from None


async def check_token_online(
    api_base: str, token: str, *, timeout: float = TELEGRAM_TIMEOUT
) -> str:
    """``check-config --online``: one getMe straight over HTTP, worded like ``get_me``.

    Not through aiogram, which takes seconds to import, for a check that is one request.
    Returns the bot as "@username (id N)".
    """
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(f"{api_base}/bot{token}/getMe") as response,
        ):
            status = response.status
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
    except TimeoutError:
        raise _unreachable(api_base, f"no answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise _unreachable(api_base, _client_error_reason(exc)) from None
    if not isinstance(body, dict):
        if status >= 500:
            raise _unreachable(api_base, f"server error: HTTP {status}")
        raise _unreachable(api_base, NOT_THE_BOT_API)
    if body.get("ok") is True and isinstance(body.get("result"), dict):
        me: dict[str, Any] = body["result"]
        return f"@{me.get('username')} (id {me.get('id')})"
    description = str(body.get("description") or f"HTTP {status}")
    if status == 401:
        raise StartupError(TOKEN_REJECTED)
    if status == 404:
        raise _not_found(api_base)
    if status >= 500 or status == 429:
        raise _unreachable(api_base, f"server error: {description}")
    raise _refused(description)


NOT_THE_BOT_API = "the answer is not the Bot API's: is TELEGRAM_API_BASE right?"


def _not_found(api_base: str) -> StartupError:
    return StartupError(
        f"Telegram error: {api_base} answered getMe with 404 Not Found — check "
        "TELEGRAM_API_BASE (and BOT_TOKEN)"
    )


def _refused(description: str) -> StartupError:
    return StartupError(
        f"Telegram error: getMe failed ({description}) — check BOT_TOKEN and TELEGRAM_API_BASE"
    )


def _unreachable(api_base: str, reason: str) -> TelegramUnreachableError:
    return TelegramUnreachableError(api_base, reason)


def _network_reason(exc: TelegramNetworkError) -> str:
    cause = exc.__cause__
    if cause is None:
        return exc.message.removeprefix("HTTP Client says - ")
    return _client_error_reason(cause)


def _client_error_reason(exc: BaseException) -> str:
    """aiohttp's error in a few words (never its text: that may hold the URL, token and all)."""
    from aiohttp import ClientConnectorError

    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"unknown host {exc.host}"
        return _os_reason(os_error)
    return type(exc).__name__


async def wait_for_telegram(
    bot: Bot,
    api_base: str,
    *,
    first_delay: float = TELEGRAM_FIRST_DELAY,
    max_delay: float = TELEGRAM_MAX_DELAY,
) -> User:
    """getMe until Telegram answers: one WARNING line per failed try, back-off capped.

    A token Telegram rejects (or another final answer) raises StartupError at once.
    """
    delay, attempt = first_delay, 1
    while True:
        try:
            me = await get_me(bot, api_base)
        except TelegramUnreachableError as exc:
            log.warning(
                "cannot reach the Bot API at %s (%s); trying again in %g s (attempt %d) — %s",
                exc.api_base,
                exc.reason,
                delay,
                attempt,
                TELEGRAM_HINT,
            )
            await asyncio.sleep(delay)
            delay, attempt = min(delay * 2, max_delay), attempt + 1
            continue
        if attempt > 1:
            log.info("Telegram answered after %d attempts", attempt)
        return me


# --- signals -------------------------------------------------------------------------


@dataclass
class Interruption:
    signal: int | None = None


@contextlib.asynccontextmanager
async def interruptible() -> AsyncIterator[Interruption]:
    """SIGINT/SIGTERM cancel the body (start-up: retries, migrations) instead of a
    traceback; afterwards ``.signal`` says whether it was stopped that way."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    state = Interruption()
    previous: dict[signal.Signals, Any] = {}

    def _stop(received: signal.Signals) -> None:
        if state.signal is None and task is not None:
            state.signal = received
            task.cancel()

    for wanted in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            previous[wanted] = signal.getsignal(wanted)
            loop.add_signal_handler(wanted, _stop, wanted)
    try:
        yield state
    except asyncio.CancelledError:
        if state.signal is None or task is None:
            raise
        task.uncancel()
        log.info("stopped by %s during start-up", signal.Signals(state.signal).name)
    finally:
        for installed, old in previous.items():
            loop.remove_signal_handler(installed)
            if state.signal is not None:
                # Stopping already: a second signal (a supervisor repeating itself) must
                # not kill the clean shutdown half-way.
                loop.add_signal_handler(installed, log.info, "stopping already")
                continue
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(installed, old)
