"""Files sent by bots: multipart uploads, HTTP URLs Telegram fetches, ``file_id`` reuse.

Photos are decoded with Pillow (in a worker thread) to learn their size; like
Telegram, the emulator then offers several ``PhotoSize`` variants (90, 320, 800,
1280 and 2560 px on the longer side, as far as the original allows); the largest
keeps the original bytes.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp
from PIL import Image, UnidentifiedImageError

from . import limits
from .errors import WRONG_FILE_ID, ApiError, bad_request, entity_too_large
from .spec import Upload
from .state import FileRecord, FileStore

# Returns the emulator's shared client session (created lazily).
SessionFactory = Callable[[], aiohttp.ClientSession]

_PHOTO_SIDES = (90, 320, 800, 1280, 2560)
STICKER_SIDE = 512  # a regular sticker's longer side
_GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "")


@dataclass
class Incoming:
    data: bytes
    file_name: str | None
    mime_type: str | None


@dataclass
class SentFile:
    """A file as it goes into a message: one record, or all sizes of a photo."""

    records: list[FileRecord]

    @property
    def main(self) -> FileRecord:
        return self.records[-1]


class MediaResolver:
    def __init__(self, files: FileStore, session_factory: SessionFactory) -> None:
        self.files = files
        self._session_factory = session_factory
        # photo file_id -> the file_ids of all sizes of that photo
        self.photo_groups: dict[str, list[str]] = {}

    async def resolve(
        self,
        value: Upload | str,
        *,
        kind: str,
        width: int = 0,
        height: int = 0,
        duration: int = 0,
    ) -> SentFile:
        """Turn an InputFile-or-String parameter into stored file records."""
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            return self._reuse(value, kind)
        if isinstance(value, Upload):
            incoming = _from_upload(value, kind)
        else:
            incoming = await self._fetch(value, kind)
        if kind == "photo":
            return await self.store_photo(incoming.data)
        if kind == "sticker":
            sticker = await self.store_sticker(
                incoming.data, file_name=incoming.file_name, mime_type=incoming.mime_type
            )
            return SentFile([sticker])
        record = self.files.add(
            incoming.data,
            kind=kind,
            file_name=incoming.file_name,
            mime_type=incoming.mime_type,
            width=width,
            height=height,
            duration=duration,
        )
        return SentFile([record])

    def _reuse(self, file_id: str, kind: str) -> SentFile:
        record = self.files.get(file_id)
        if record is None:
            raise bad_request(WRONG_FILE_ID)
        if (record.kind == "photo") != (kind == "photo") or (
            kind == "sticker" and record.kind != "sticker"
        ):
            raise bad_request("type of file mismatch")
        if kind == "photo":
            group = self.photo_groups.get(file_id, [file_id])
            return SentFile([r for r in (self.files.get(i) for i in group) if r is not None])
        return SentFile([record])

    async def store_photo(self, data: bytes) -> SentFile:
        sizes = await asyncio.to_thread(photo_variants, data)
        records = [
            self.files.add(blob, kind="photo", mime_type="image/jpeg", width=w, height=h)
            for blob, w, h in sizes
        ]
        ids = [r.file_id for r in records]
        for file_id in ids:
            self.photo_groups[file_id] = ids
        return SentFile(records)

    async def store_sticker(
        self,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        emoji: str | None = None,
        width: int | None = None,
        height: int | None = None,
        set_name: str | None = None,
    ) -> FileRecord:
        """A sticker file: .TGS is animated, .WEBM a video sticker, anything else a static
        .WEBP (its size read from the image when Pillow can, else Telegram's 512x512)."""
        name = (file_name or "").lower()
        is_animated = name.endswith(".tgs") or mime_type == "application/x-tgsticker"
        is_video = not is_animated and (name.endswith(".webm") or mime_type == "video/webm")
        if width is None or height is None:
            size = None if is_animated or is_video else await asyncio.to_thread(_image_size, data)
            width, height = size or (STICKER_SIDE, STICKER_SIDE)
        mime = (
            "application/x-tgsticker" if is_animated else "video/webm" if is_video else "image/webp"
        )
        record = self.files.add(data, kind="sticker", mime_type=mime, width=width, height=height)
        record.emoji = emoji
        record.is_animated = is_animated
        record.is_video = is_video
        record.set_name = set_name
        return record

    async def _fetch(self, url: str, kind: str) -> Incoming:
        limit = limits.URL_PHOTO_MAX if kind == "photo" else limits.URL_FILE_MAX
        session = self._session_factory()
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                if response.status != 200:
                    raise bad_request("failed to get HTTP URL content")
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.content.iter_chunked(65536):
                    total += len(chunk)
                    if total > limit:
                        raise bad_request("file is too big")
                    chunks.append(chunk)
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            raise bad_request("failed to get HTTP URL content") from None
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
        return Incoming(b"".join(chunks), name, _mime(content_type, name))


def _from_upload(upload: Upload, kind: str) -> Incoming:
    limit = limits.PHOTO_UPLOAD_MAX if kind == "photo" else limits.UPLOAD_MAX
    if len(upload.data) > limit:
        if kind == "photo":
            raise bad_request("file is too big")
        raise entity_too_large()
    if not upload.data:
        raise bad_request("file must be non-empty")
    return Incoming(upload.data, upload.filename, _mime(upload.content_type or "", upload.filename))


def _mime(content_type: str, file_name: str | None) -> str | None:
    if content_type and content_type not in _GENERIC_TYPES:
        return content_type
    if file_name:
        return mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    return None


def photo_variants(data: bytes) -> list[tuple[bytes, int, int]]:
    """Decode a photo and produce its size variants (blocking: run in a thread)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            if width <= 0 or height <= 0:
                raise bad_request("IMAGE_PROCESS_FAILED")
            if width + height > limits.PHOTO_MAX_DIMENSIONS_SUM or (
                max(width, height) / min(width, height) > limits.PHOTO_MAX_RATIO
            ):
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
            longest = max(width, height)
            variants: list[tuple[bytes, int, int]] = []
            rgb = image.convert("RGB")
            for side in _PHOTO_SIDES:
                if side >= longest:
                    break
                scale = side / longest
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                variants.append((_jpeg(rgb.resize(size)), *size))
            if longest <= _PHOTO_SIDES[-1]:  # else the 2560 variant is the largest
                variants.append((data, width, height))
            return variants
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise bad_request("IMAGE_PROCESS_FAILED") from None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of an image, or None if Pillow cannot read it (blocking)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
