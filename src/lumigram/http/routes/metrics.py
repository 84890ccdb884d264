"""``/metrics`` in Prometheus' text format."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lumigram.http.deps import Host

log = logging.getLogger(__name__)
router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(host: Host) -> Response:
    try:
        await host.metrics.refresh(host.reader)
    except Exception as error:  # the process's own metrics are still worth a scrape
        log.warning("metrics: the database counts failed (%s)", type(error).__name__)
    return Response(host.metrics.render(), media_type=CONTENT_TYPE_LATEST)
