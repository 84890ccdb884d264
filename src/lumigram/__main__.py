"""The ``lumigram`` command: the composition root of the application."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from lumigram import __version__
from lumigram.config import (
    ConfigError,
    DatabaseSettings,
    Settings,
    load_database_settings,
    load_settings,
)

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumigram", description="Self-hosted AI image generation bot for Telegram."
    )
    parser.add_argument("--version", action="version", version=f"lumigram {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "run",
        help="apply migrations and start the bot (long polling or webhook) and its HTTP server",
    )
    commands.add_parser(
        "bot",
        help="only the Telegram side (polling or webhook) and its HTTP server; no workers",
    )
    commands.add_parser(
        "worker",
        help="only the job workers, the sweeper and the money work (refunds, reconciliation)",
    )
    commands.add_parser("api", help="only the HTTP API (/v1, provider callbacks, health, metrics)")
    commands.add_parser("migrate", help="apply database migrations")
    check = commands.add_parser(
        "check-config",
        help="validate the configuration, the catalog and the database; print it, secrets masked",
    )
    check.add_argument(
        "--online", action="store_true", help="also ask Telegram whether it accepts BOT_TOKEN"
    )
    sandbox = commands.add_parser(
        "sandbox",
        help="try the bot in a browser: the Bot API emulator, the real bot and a web chat",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    sandbox.add_argument(
        "--data",
        default="./sandbox-data",
        help="folder kept between runs: the bot's database, files, simulated users",
    )
    sandbox.add_argument("--fresh", action="store_true", help="delete the --data folder first")
    sandbox.add_argument(
        "--fake-providers",
        action="store_true",
        help="run local fakes of Replicate, OpenAI, Gemini, Hugging Face and KIE",
    )
    ledger = commands.add_parser("ledger", help="money: check the ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    ledger_commands.add_parser(
        "verify", help="check every balance against its ledger (exit 1 on any difference)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "sandbox":  # its own settings: no BOT_TOKEN needed
        from pathlib import Path

        from lumigram.sandbox.cli import run_sandbox

        return run_sandbox(
            host=args.host,
            port=args.port,
            data_dir=Path(args.data),
            fresh=args.fresh,
            fake_providers=args.fake_providers,
        )
    try:
        settings: DatabaseSettings = (
            load_database_settings() if args.command in ("migrate", "ledger") else load_settings()
        )
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    from lumigram.logs import SecretFilter, setup_logging
    from lumigram.startup import StartupError

    setup_logging(settings.log_level, secrets=_secrets(settings))
    try:
        return _command(args, settings)
    except StartupError as error:  # one line naming the setting or service; no traceback
        print(SecretFilter(_secrets(settings)).mask(str(error)), file=sys.stderr)
        return EXIT_CONFIG


def _command(args: argparse.Namespace, settings: DatabaseSettings) -> int:
    if args.command == "check-config":
        assert isinstance(settings, Settings)
        report = asyncio.run(_check(settings, online=args.online))
        for name, value in settings.masked().items():
            print(f"{name}={value}")
        for line in report:
            print(line)
        from lumigram.pricing import print_price_report

        print_price_report(settings)  # prices and margins per route, warnings
        print("Configuration OK.")
        return 0
    if args.command == "migrate":
        from lumigram.startup import migrate_database  # not the bot: it takes seconds to load

        print(asyncio.run(migrate_database(settings.database_url.get_secret_value())))
        return 0
    if args.command == "ledger":
        from lumigram.runtime import verify_ledger
        from lumigram.startup import inspect_database

        asyncio.run(inspect_database(settings.database_url.get_secret_value()))
        problems = asyncio.run(verify_ledger(settings))
        for problem in problems:
            print(problem)
        print("Ledger OK." if not problems else f"{len(problems)} problem(s) found.")
        return 0 if not problems else 1
    assert isinstance(settings, Settings)
    with contextlib.suppress(KeyboardInterrupt):
        # The catalog and the database first: a problem there is reported in a moment,
        # before the seconds it takes to import the bot.
        from lumigram.startup import load_checked_catalog, reach_database

        load_checked_catalog(settings.catalog_file)
        asyncio.run(reach_database(settings.database_url.get_secret_value()))
        from lumigram.runtime import EMBEDDED, Role, run_bot

        roles = EMBEDDED if args.command == "run" else frozenset({Role(args.command)})
        asyncio.run(run_bot(settings, roles))
    return 0


async def _check(settings: Settings, *, online: bool) -> list[str]:
    """What ``check-config`` checks beyond the settings: the catalog, the database and,
    with ``--online``, Telegram. Raises StartupError on the first problem."""
    from lumigram.startup import check_token_online, inspect_database, load_checked_catalog

    catalog = load_checked_catalog(settings.catalog_file)
    source = f"shipped + {settings.catalog_file}" if settings.catalog_file else "shipped"
    report = [f"Catalog OK: {len(catalog)} models ({source})"]
    report.append(await inspect_database(settings.database_url.get_secret_value()))
    if online:
        token = settings.bot_token.get_secret_value()
        me = await check_token_online(settings.telegram_api_base, token)
        report.append(f"Telegram OK: {me} at {settings.telegram_api_base}")
    return report


def _secrets(settings: DatabaseSettings) -> list[str]:
    from sqlalchemy.engine import make_url

    secrets = [settings.database_url.get_secret_value()]
    with contextlib.suppress(Exception):  # an unparsable URL has no password to hide
        password = make_url(settings.database_url.get_secret_value()).password
        if password:
            secrets.append(str(password))
    if isinstance(settings, Settings):
        secrets.append(settings.bot_token.get_secret_value())
        secrets.extend(settings.provider_keys().values())
        if settings.webhook_secret is not None:
            secrets.append(settings.webhook_secret.get_secret_value())
    return secrets


if __name__ == "__main__":
    sys.exit(main())
