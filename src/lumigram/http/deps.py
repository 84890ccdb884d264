"""FastAPI dependencies: the running application and its parts, from the app's state."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from lumigram.http.app import HttpHost
from lumigram.http.webhook import WebhookFeeder


def get_host(request: Request) -> HttpHost:
    return cast(HttpHost, request.app.state.host)


def get_feeder(request: Request) -> WebhookFeeder:
    return cast(WebhookFeeder, request.app.state.feeder)


Host = Annotated[HttpHost, Depends(get_host)]
Feeder = Annotated[WebhookFeeder, Depends(get_feeder)]
