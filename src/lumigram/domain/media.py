"""Media types and image facts: pure values the generation pipeline passes around.

The decoding itself (Pillow) is an adapter, ``lumigram.imaging``, reached by the
services through the ``ImageProcessor`` port; what it reports is defined here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageInfo", "InvalidImage", "InvalidVideo", "VideoInfo", "sniff_media_type"]


class InvalidImage(ValueError):  # noqa: N818 - the name the pipeline was specified with
    """The bytes are not a JPEG/PNG/WebP image we are willing to decode."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "jpeg", "png" or "webp"
    mime_type: str
    width: int
    height: int


class InvalidVideo(ValueError):  # noqa: N818 - named like InvalidImage
    """The bytes are not a video we can probe (no video stream, unreadable container)."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    container: str  # "mp4", "webm", ...
    mime_type: str
    width: int
    height: int
    duration: float  # seconds


def sniff_media_type(data: bytes) -> str | None:
    """The media type from magic bytes; None unless it is an image or video we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None
