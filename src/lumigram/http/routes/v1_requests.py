"""Reading a generation request: JSON or multipart/form-data, URLs, reference downloads.

A request body is read with a size cap (a bigger one is 413 before it is all read).
URLs (``callback_url``, ``reference_urls``) must be http(s); a literal loopback,
private, link-local or otherwise non-public address and ``localhost`` are refused
unless ``API_CALLBACK_PRIVATE_HOSTS`` is on. Reference URLs are downloaded with a
timeout and a size cap, following at most a few redirects (each checked the same way).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.types import Message

from lumigram import __version__
from lumigram.http.problems import ProblemError, problem_type
from lumigram.http.routes.v1_schemas import DEFAULT_MODE
from lumigram.services.generation import MAX_REFERENCE_BYTES

MAX_JSON_BODY = 1024 * 1024
MAX_REFERENCES = 16  # no model takes more (the catalog's limit)
MAX_FORM_BODY = MAX_REFERENCES * MAX_REFERENCE_BYTES + MAX_JSON_BODY
MAX_URL_LENGTH = 2000
MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT = httpx.Timeout(10.0)  # connect, each read, each write
DOWNLOAD_DEADLINE = 30.0  # seconds for one reference URL, all of it
MAX_IDEMPOTENCY_KEY = 128
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # visible ASCII
_LEGACY_IPV4 = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)  # 127.1, 0x7f.0.0.1, 2130706433


class GenerationRequest(BaseModel):
    """A generation request: as JSON, or the same fields as multipart/form-data."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        max_length=64,
        description="a model id from GET /v1/models (default: the first one)",
    )
    mode: str = Field(
        default=DEFAULT_MODE,
        min_length=1,
        max_length=64,
        description='a mode (template) slug from GET /v1/models; "custom": the prompt as is',
    )
    prompt: str = Field(max_length=20000, description="what to draw (1 to MAX_PROMPT_LENGTH)")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="aspect_ratio, output_format, num_outputs, seed, negative_prompt, … "
        "(what the model's capabilities offer)",
    )
    reference_urls: list[str] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        description="http(s) URLs of JPEG, PNG or WebP reference images (10 MB each)",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="an http(s) URL the finished generation is POSTed to, signed",
    )


def invalid(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(
        422, detail, title="Invalid request", type=problem_type("invalid-request"), **extra
    )


# --- the body ---------------------------------------------------------------------
def _capped(request: Request, limit: int) -> Request:
    """``request`` whose body may be at most ``limit`` bytes (413 past it)."""
    too_large = ProblemError(
        413,
        f"the request body is larger than {limit // (1024 * 1024)} MB",
        type=problem_type("too-large"),
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    received = 0
    receive = request.receive

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
        return message

    return Request(request.scope, capped_receive)


def _validation_error(error: ValidationError) -> RequestValidationError:
    errors = []
    for item in error.errors(include_input=False, include_url=False):
        errors.append({**item, "loc": ("body", *item["loc"])})
    return RequestValidationError(errors)


async def read_generation_request(request: Request) -> tuple[GenerationRequest, list[bytes]]:
    """The request and its uploaded reference images (multipart ``references``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(_capped(request, MAX_FORM_BODY))
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ProblemError(
            415,
            "send the request as application/json or multipart/form-data",
            type=problem_type("unsupported-media-type"),
        )
    body = await _capped(request, MAX_JSON_BODY).body()
    try:
        return GenerationRequest.model_validate_json(body), []
    except ValidationError as error:
        raise _validation_error(error) from None


async def _read_form(request: Request) -> tuple[GenerationRequest, list[bytes]]:
    fields: dict[str, Any] = {}
    uploads: list[bytes] = []
    async with request.form(max_files=MAX_REFERENCES, max_fields=50) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "references":
                    raise invalid(f"files go in the field 'references', not {name!r}")
                data = await value.read(MAX_REFERENCE_BYTES + 1)
                if len(data) > MAX_REFERENCE_BYTES:
                    raise invalid(
                        f"references[{len(uploads)}]: larger than 10 MB",
                        field="references",
                        reason="size",
                    )
                uploads.append(data)
            elif name == "reference_urls":
                fields.setdefault(name, []).append(value)
            elif name == "references":
                raise invalid("'references' takes files; URLs go in 'reference_urls'")
            elif name in fields:
                raise invalid(f"the field {name!r} is given twice")
            elif name == "settings":
                try:
                    fields[name] = json.loads(value) if value.strip() else {}
                except ValueError:
                    raise invalid("settings: not valid JSON (send a JSON object)") from None
            elif value == "" and name in ("model", "mode", "callback_url"):
                continue  # an empty optional field: not given
            else:
                fields[name] = value
    try:
        return GenerationRequest.model_validate(fields), uploads
    except ValidationError as error:
        raise _validation_error(error) from None


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise invalid(
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (a UUID, say)"
        )
    return value


def request_hash(request: GenerationRequest, model_id: str, uploads: Sequence[bytes]) -> str:
    """SHA-256 (hex) of the request in a canonical JSON form: what an idempotency key
    was first used for (uploads count by their own SHA-256)."""
    canonical = {
        "model": model_id,
        "mode": request.mode,
        "prompt": request.prompt,
        "settings": request.settings,
        "reference_urls": request.reference_urls,
        "references": [hashlib.sha256(data).hexdigest() for data in uploads],
        "callback_url": request.callback_url,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- URLs -------------------------------------------------------------------------
def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _LEGACY_IPV4.match(host):
            return None
        try:  # the forms resolvers accept too: 127.1, 0x7f.0.0.1, 2130706433
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def private_host(host: str) -> bool:
    """``localhost`` or a literal address that is not public (loopback, private,
    link-local, shared, reserved, multicast ...). Names are not resolved."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _literal_address(host)
    return address is not None and (not address.is_global or address.is_multicast)


def check_url(url: str, field: str, *, allow_private: bool) -> str:
    """``url`` if it is an http(s) URL we may call; else a 422 problem naming ``field``."""
    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"{field}: longer than {MAX_URL_LENGTH} characters", field=field)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise invalid(f"{field}: not a valid URL", field=field) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise invalid(f"{field}: must be an http:// or https:// URL", field=field)
    if not allow_private and private_host(host):
        raise invalid(
            f"{field}: {host} is a local or private address, which is not accepted",
            field=field,
        )
    return url


def shown_url(url: str) -> str:
    """The URL for logs and messages: no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class ReferenceDownloadError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # "download" or "size"
        self.detail = detail


async def download(client: httpx.AsyncClient, url: str, *, allow_private: bool) -> bytes:
    """The bytes at ``url`` (at most MAX_REFERENCE_BYTES), following a few redirects."""
    async with asyncio.timeout(DOWNLOAD_DEADLINE):
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    url = check_url(
                        urljoin(url, response.headers["location"]),
                        "reference_urls",
                        allow_private=allow_private,
                    )
                    continue
                if response.status_code != 200:
                    raise ReferenceDownloadError(
                        "download", f"the server answered HTTP {response.status_code}"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_REFERENCE_BYTES:
                    raise ReferenceDownloadError("size", "larger than 10 MB")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_REFERENCE_BYTES:
                        raise ReferenceDownloadError("size", "larger than 10 MB")
                    chunks.append(chunk)
                return b"".join(chunks)
    raise ReferenceDownloadError("download", f"more than {MAX_REDIRECTS} redirects")


async def download_references(urls: Sequence[str], *, allow_private: bool) -> list[bytes]:
    """Every reference URL's bytes, in order; a 422 problem naming the first that fails."""
    if not urls:
        return []
    headers = {"User-Agent": f"Lumigram/{__version__} (reference image download)"}
    async with httpx.AsyncClient(
        timeout=DOWNLOAD_TIMEOUT, follow_redirects=False, headers=headers
    ) as client:
        results = await asyncio.gather(
            *(download(client, url, allow_private=allow_private) for url in urls),
            return_exceptions=True,
        )
    downloaded: list[bytes] = []
    for index, (url, result) in enumerate(zip(urls, results, strict=True)):
        field = f"reference_urls[{index}]"
        if isinstance(result, bytes):
            downloaded.append(result)
            continue
        if isinstance(result, ProblemError):
            raise result
        if isinstance(result, ReferenceDownloadError):
            reason, why = result.reason, result.detail
        elif isinstance(result, TimeoutError | httpx.TimeoutException):
            reason, why = "download", "the download took too long"
        elif isinstance(result, httpx.HTTPError):
            reason, why = "download", f"could not be downloaded ({type(result).__name__})"
        else:
            raise result
        raise invalid(f"{field} ({shown_url(url)}): {why}", field=field, reason=reason)
    return downloaded
