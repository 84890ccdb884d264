"""Errors as RFC 9457 problem details (``application/problem+json``).

A problem is a JSON object with ``type`` (a URI naming the kind of problem;
``about:blank`` when the status says it all), ``title`` (the same for every
occurrence of that kind), ``status``, ``detail`` (what went wrong this time, in words
for the API's user) and any extra members (e.g. ``credits_needed``).

``install_problem_handlers`` makes every error of the routes under the given path
prefixes a problem: our own ``ProblemError``, FastAPI's validation errors (422, with the
field errors), Starlette's HTTP errors (404 for an unknown path, 405, 400 for a broken
form ...) and anything unexpected (500, logged). Other routes keep FastAPI's answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# ``type`` of our own kinds of problems: this and a name, e.g.
# "urn:lumigram:problem:payment-required" (docs/api.md lists them); a status that says
# it all is "about:blank".
TYPE_BASE = "urn:lumigram:problem:"
MAX_FIELD_ERRORS = 20


def problem_type(name: str) -> str:
    """The ``type`` URI of one of our kinds of problems."""
    return TYPE_BASE + name


class ProblemError(Exception):
    """Raise it in a route to answer with a problem; ``extra`` becomes extra members."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type: str = "about:blank",  # noqa: A002 (the RFC's name)
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _phrase(status)
        self.type = type
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }

    def response(self) -> JSONResponse:
        return problem_response(self.status, self.body(), self.headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without their input (it may be large, or a secret) or context."""
    shown: list[dict[str, Any]] = []
    for error in list(errors)[:MAX_FIELD_ERRORS]:
        if not isinstance(error, Mapping):
            continue
        shown.append(
            {
                "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return shown


def describe_field_errors(errors: list[dict[str, Any]]) -> str:
    """One line for the field errors: ``prompt: Field required; settings: ...``."""
    parts = []
    for error in errors[:3]:
        loc = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {error['msg']}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more if parts else "the request is not valid"


def install_problem_handlers(app: FastAPI, prefixes: Sequence[str] | None = None) -> None:
    """Answer errors as problems for paths under ``prefixes`` (every path if None)."""

    def applies(request: Request) -> bool:
        if prefixes is None:
            return True
        path = request.url.path
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response()

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not applies(request):
            return await request_validation_exception_handler(request, exc)
        errors = field_errors(exc.errors())
        return ProblemError(
            422,
            describe_field_errors(errors),
            title="Invalid request",
            type=problem_type("invalid-request"),
            errors=errors,
        ).response()

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not applies(request):
            return await http_exception_handler(request, exc)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(status)
        if status == 404 and detail == "Not Found":
            detail = f"there is nothing at {request.url.path}"
        elif status == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        headers = dict(exc.headers or {})
        if status in (204, 304):  # no body allowed
            return Response(status_code=status, headers=headers)
        return ProblemError(status, detail, headers=headers).response()

    async def on_error(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware calls this and then re-raises (the error is
        # logged by the server); the client gets an answer without internals.
        if not applies(request):
            return PlainTextResponse("Internal Server Error", status_code=500)
        return ProblemError(
            500, "something went wrong on our side; please try again later"
        ).response()

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)
