"""The HTTP server (FastAPI on uvicorn): health, readiness, metrics, the Telegram webhook.

See docs/http.md. ``create_app`` builds the FastAPI app for one running application
(anything shaped like ``HttpHost``); ``HttpServer`` serves it inside the process's own
event loop, leaving signal handling to the process.
"""

from lumigram.http.app import HttpHost, create_app
from lumigram.http.metrics import Metrics, UpdateMetricsMiddleware
from lumigram.http.server import HttpServer
from lumigram.http.webhook import HandlingOutcomeMiddleware, WebhookFeeder

__all__ = [
    "HandlingOutcomeMiddleware",
    "HttpHost",
    "HttpServer",
    "Metrics",
    "UpdateMetricsMiddleware",
    "WebhookFeeder",
    "create_app",
]
