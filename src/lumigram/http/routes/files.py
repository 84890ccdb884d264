"""``GET /files/{key}?expires=&sig=``: a result file by a signed link with an expiry.

The links are made by ``services.file_links.FileLinks`` for files too big to upload to
Telegram when the store has no URLs of its own (a local folder). The file is streamed
from the application's storage: a local file as a ``FileResponse`` (byte ranges, so a
download can resume). A store with URLs of its own (S3) is linked by those instead.

Answers: 403 (problem+json) for a signature that is not ours or has expired, 404 for a
key that is not a result file or a file that is no longer stored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from lumigram.http.app import HttpHost
from lumigram.http.deps import Host
from lumigram.http.problems import problem_response
from lumigram.services.file_links import FileLinks, linkable
from lumigram.storage.keys import StorageKeyError, check_key
from lumigram.storage.local import LocalStorage

log = logging.getLogger(__name__)
router = APIRouter(tags=["files"])

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def file_links(host: HttpHost) -> FileLinks:
    """The application's links (``Infrastructure.file_links``), which the bot signs too."""
    return host.infra.file_links


def content_type(key: str) -> str:
    """The MIME type of a stored file by its extension (mp4 -> video/mp4)."""
    name = key.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(extension, DEFAULT_CONTENT_TYPE)


def download_name(key: str) -> str:
    """``results/42/0.mp4`` -> ``lumigram-42-0.mp4``."""
    parts = [_UNSAFE_NAME.sub("_", part) for part in key.split("/")[1:] if part]
    return "lumigram-" + "-".join(parts) if parts else "lumigram"


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def linked_file(
    key: str,
    host: Host,
    expires: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
) -> Response:
    try:
        check_key(key)
    except StorageKeyError:
        return _not_found()
    if not linkable(key):
        return _not_found()
    if not file_links(host).verify(key, expires, sig):
        return _problem(403, "Forbidden", "the link is not valid or has expired")
    headers = {
        "Content-Disposition": f'attachment; filename="{download_name(key)}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    media_type = content_type(key)
    storage = host.infra.storage
    if isinstance(storage, LocalStorage):
        path = _local_path(storage, key)
        if path is None or not await asyncio.to_thread(path.is_file):
            return _missing(key)
        return FileResponse(path, media_type=media_type, headers=headers)
    # A store with URLs of its own (S3) is linked by them, never through here.
    try:
        data = await storage.get(key)
    except (FileNotFoundError, KeyError):
        return _missing(key)
    return Response(data, media_type=media_type, headers=headers)


def _local_path(storage: LocalStorage, key: str) -> Path | None:
    """The file of ``key`` in the storage folder (None if it would be outside it)."""
    path = (storage.root / key).resolve()
    return path if storage.root in path.parents else None


def _missing(key: str) -> Response:
    log.info("linked file %s is no longer stored", key)
    return _not_found("the file is no longer stored")


def _not_found(detail: str = "there is no such file") -> Response:
    return _problem(404, "Not found", detail)


def _problem(status: int, title: str, detail: str) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    return problem_response(status, {**body, "detail": detail})
