"""Serving the app with uvicorn inside the running event loop.

The socket is bound first (``bind``), so that a busy port is a one-line start-up
error naming HTTP_PORT, and port 0 becomes a known free port. uvicorn's ``startup`` and
``shutdown`` are called directly, not ``serve()``: that would install signal handlers
of its own and poll for an exit flag every 0.1 s. SIGINT/SIGTERM stay the process's
(``startup.interruptible``, the dispatcher's polling, ``BotApplication.run_webhook``),
which stop the server, at once.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 5.0  # seconds given to requests in progress when stopping


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None

    def bind(self) -> None:
        """Take the port now; StartupError naming HTTP_PORT when it cannot be had."""
        from lumigram.startup import StartupError

        try:
            infos = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as error:
            raise StartupError(
                f"HTTP error: cannot listen on {self.host}:{self.port} "
                f"({error.strerror or error}) — check HTTP_HOST"
            ) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as error:
            sock.close()
            raise StartupError(
                f"HTTP error: cannot listen on {self.host}:{self.port} "
                f"({error.strerror or error}) — set HTTP_PORT to a free port (0: any)"
                " or stop what uses it"
            ) from None
        sock.setblocking(False)
        self._socket = sock
        self.port = int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Serve in the background; returns once the server accepts connections."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            # Its "Started server process" lines would break start-up's one-line errors.
            log_level=logging.WARNING,
            access_log=False,
            server_header=False,
            date_header=False,  # uvicorn refreshes it in serve()'s loop, which is not run
            timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)  # "off": the app has no lifespan
        await server.startup(sockets=[self._socket])
        self._server = server
        log.debug("HTTP server on %s", self.url)

    async def stop(self) -> None:
        """Stop listening; requests in progress get SHUTDOWN_TIMEOUT seconds to finish."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown(sockets=[self._socket] if self._socket else None)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
