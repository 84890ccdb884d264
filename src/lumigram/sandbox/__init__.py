"""The browser sandbox (``lumigram sandbox``): the real bot against the Bot API emulator,
a Telegram-like chat in the browser and a simulation API beside it (docs/sandbox.md).

``session`` runs the emulator, the bot as a child process and the provider fakes;
``server`` serves the UI's static files, the API under ``/api`` and its events;
``serialize`` turns messages and Bot API calls into the API's JSON.
"""
