"""Video probing with PyAV (FFmpeg's libraries): the ``VideoProcessor`` port.

Every function here is synchronous and CPU-bound: call it through ``asyncio.to_thread``.
Inputs are untrusted bytes (a provider's result), so every decoder failure becomes
``InvalidVideo``; only MP4/QuickTime and WebM/Matroska containers with a video stream are
accepted. PyAV is imported on first use, so a bot without video models never loads it.
"""

from __future__ import annotations

import importlib
import io
from typing import Any, Final

from PIL import Image

from lumigram.domain.media import InvalidVideo, VideoInfo

__all__ = ["MAX_VIDEO_PIXELS", "PyAVVideos", "first_frame", "probe_video"]

# FFmpeg's demuxer names -> (our container name, MIME type).
_CONTAINERS: Final[dict[str, tuple[str, str]]] = {
    "mov,mp4,m4a,3gp,3g2,mj2": ("mp4", "video/mp4"),
    "matroska,webm": ("webm", "video/webm"),
}
MAX_VIDEO_PIXELS: Final = 4096 * 4096  # per frame; a 4K video is 8.8 MP
MAX_DURATION: Final = 3600.0  # seconds; generated clips are 5-10 s


def _av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError as error:  # pragma: no cover - a hard dependency
        raise InvalidVideo("PyAV is not installed (pip install av)") from error


def _open(data: bytes) -> Any:
    av = _av()
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise InvalidVideo(f"not a readable video: {error}") from None


def probe_video(data: bytes) -> VideoInfo:
    """Container, MIME type, size and duration, read from the container's headers."""
    if not data:
        raise InvalidVideo("empty file")
    with _open(data) as container:
        known = _CONTAINERS.get(container.format.name)
        if known is None:
            raise InvalidVideo(f"container {container.format.name!r} is not MP4 or WebM")
        if not container.streams.video:
            raise InvalidVideo("the file has no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.width or 0), int(stream.height or 0)
        if width <= 0 or height <= 0 or width * height > MAX_VIDEO_PIXELS:
            raise InvalidVideo(f"unusable frame size {width}x{height}")
        duration = _duration(container, stream)
        if not 0 < duration <= MAX_DURATION:
            raise InvalidVideo(f"unusable duration {duration:.2f} s")
        name, mime_type = known
        return VideoInfo(name, mime_type, width, height, round(duration, 3))


def first_frame(data: bytes, max_side: int = 320) -> bytes:
    """The first decodable frame as a JPEG, its longer side at most ``max_side``
    (Telegram's limit for a video's thumbnail is 320 and 200 kB)."""
    av = _av()
    with _open(data) as container:
        if not container.streams.video:
            raise InvalidVideo("the file has no video stream")
        try:
            for frame in container.decode(video=0):
                image: Image.Image = frame.to_image()
                break
            else:
                raise InvalidVideo("no frame could be decoded")
        except av.FFmpegError as error:
            raise InvalidVideo(f"the first frame cannot be decoded: {error}") from None
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return 0.0


class PyAVVideos:
    """``services.ports.VideoProcessor`` implemented with PyAV."""

    def probe(self, data: bytes) -> VideoInfo:
        return probe_video(data)

    def first_frame(self, data: bytes, max_side: int = 320) -> bytes:
        return first_frame(data, max_side)
