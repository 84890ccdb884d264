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
    commands.add_parser("run", help="apply migrations and start the bot (long polling)")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser(
        "check-config", help="validate the configuration and print it, secrets masked"
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
    try:
        settings: DatabaseSettings = (
            load_database_settings() if args.command in ("migrate", "ledger") else load_settings()
        )
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    from lumigram.logs import setup_logging

    setup_logging(settings.log_level, secrets=_secrets(settings))
    if args.command == "check-config":
        for name, value in settings.masked().items():
            print(f"{name}={value}")
        print("Configuration OK.")
        return 0
    if args.command == "migrate":
        from lumigram.runtime import migrate

        revision = asyncio.run(migrate(settings))
        print(f"Database is at revision {revision}.")
        return 0
    if args.command == "ledger":
        from lumigram.runtime import verify_ledger

        problems = asyncio.run(verify_ledger(settings))
        for problem in problems:
            print(problem)
        print("Ledger OK." if not problems else f"{len(problems)} problem(s) found.")
        return 0 if not problems else 1
    from lumigram.runtime import run_bot

    assert isinstance(settings, Settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_bot(settings))
    return 0


def _secrets(settings: DatabaseSettings) -> list[str]:
    secrets = [settings.database_url.get_secret_value()]
    if isinstance(settings, Settings):
        secrets.append(settings.bot_token.get_secret_value())
        secrets.extend(settings.provider_keys().values())
    return secrets


if __name__ == "__main__":
    sys.exit(main())
