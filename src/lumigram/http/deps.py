"""FastAPI dependencies: the running application and its parts, from the app's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request

from lumigram.container import Services
from lumigram.http.app import HttpHost
from lumigram.http.webhook import WebhookFeeder


def get_host(request: Request) -> HttpHost:
    return cast(HttpHost, request.app.state.host)


def get_feeder(request: Request) -> WebhookFeeder:
    return cast(WebhookFeeder, request.app.state.feeder)


Host = Annotated[HttpHost, Depends(get_host)]
Feeder = Annotated[WebhookFeeder, Depends(get_feeder)]


async def get_services(request: Request) -> AsyncIterator[Services]:
    """The use cases over one database session for one request; the follow-ups the use
    cases scheduled (e.g. handing a new job to a worker) run when the route is done."""
    host = get_host(request)
    async with host.sessionmaker() as session:
        services = Services(session, host.infra)
        try:
            yield services
        finally:
            await services.run_followups()


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_read_services(request: Request) -> AsyncIterator[Services]:
    """The use cases over a read session (for reads only): on SQLite it takes no write
    lock, so it never waits behind writers (a write in it could meet "database is
    locked": use ``ServicesDep`` for anything that writes)."""
    host = get_host(request)
    async with host.reader() as session:
        yield Services(session, host.infra)


ReadServicesDep = Annotated[Services, Depends(get_read_services)]
