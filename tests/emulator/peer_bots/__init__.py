"""Small bots written the way aiogram's examples (and python-telegram-bot's, ported to
aiogram) are written. They are not Lumigram code: ``tests/emulator/test_peer_bots.py``
runs them against the emulator to show that it behaves as Telegram does for what such
bots use. Each module's ``make_router()`` is its ``dp``."""
