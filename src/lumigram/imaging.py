"""Pure image helpers for the generation pipeline.

Every function here is synchronous and CPU-bound: call it through
``asyncio.to_thread`` from async code. Inputs are untrusted bytes (provider
outputs, user uploads), so everything is decoded through ``open_image``, which
accepts only JPEG, PNG and WebP, enforces a pixel limit before decoding (a
decompression bomb is rejected from its header alone) and turns every decoder
failure into ``InvalidImage``.
"""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import Image, ImageChops, ImageFilter, ImageOps

from lumigram.domain.media import ImageInfo, InvalidImage

__all__ = [
    "A4_MM",
    "MAX_PIXELS",
    "ImageInfo",
    "InvalidImage",
    "PillowImages",
    "convert_format",
    "encode",
    "normalize_format",
    "open_image",
    "probe_image",
    "thumbnail",
    "to_coloring_page",
]

# 64 MP covers a 4K x 4K output (16.8 MP) with room to spare; anything larger
# from a provider or a user is more likely an attack than a picture.
MAX_PIXELS: Final = 64_000_000

A4_MM: Final = (210.0, 297.0)

# Pillow's format name -> (our format name, MIME type).
_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "JPEG": ("jpeg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
_FORMAT_ALIASES: Final[dict[str, str]] = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
}

# Telegram's limits for a photo sent with sendPhoto.
TELEGRAM_PHOTO_MAX_BYTES: Final = 10 * 1024 * 1024
TELEGRAM_PHOTO_MAX_SIDES_SUM: Final = 10_000
TELEGRAM_PHOTO_MAX_RATIO: Final = 20.0


def normalize_format(fmt: str) -> str:
    """``"jpg"``/``"JPEG"`` -> ``"jpeg"`` etc.; ValueError for anything else."""
    try:
        return _FORMAT_ALIASES[fmt.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported image format {fmt!r}; use png, jpeg or webp") from None


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` fully and return the image; ``InvalidImage`` for anything unacceptable.

    The size is checked from the header before any pixel is decoded, and the
    image is then loaded completely so truncated or corrupt data fails here
    rather than later in the middle of a filter.
    """
    if not data:
        raise InvalidImage("empty data is not an image")
    with warnings.catch_warnings():
        # Pillow only *warns* between its own limit and twice that; make it an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(f"image is too large to decode: {exc}") from exc
        except Exception as exc:  # Pillow raises many types for garbage input
            raise InvalidImage("not a JPEG, PNG or WebP image") from exc
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("image has no pixels")
        if width * height > max_pixels:
            image.close()
            raise InvalidImage(
                f"image is {width}x{height} = {width * height} pixels, "
                f"over the limit of {max_pixels}"
            )
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(f"image is too large to decode: {exc}") from exc
        except Exception as exc:
            raise InvalidImage(f"corrupt {image.format} image: {exc}") from exc
    return image


def probe_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Format, MIME type and size of ``data``, after fully decoding it to prove it is sound.

    Raises ``InvalidImage`` for anything that is not a JPEG/PNG/WebP, is
    corrupt or truncated, or has more than ``max_pixels`` pixels.
    """
    with open_image(data, max_pixels=max_pixels) as image:
        fmt, mime = _FORMATS[str(image.format)]
        return ImageInfo(format=fmt, mime_type=mime, width=image.width, height=image.height)


def _flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB copy of ``image`` with any transparency composited onto ``background``."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def encode(image: Image.Image, fmt: str, *, quality: int = 90) -> bytes:
    """Encode a Pillow image as png/jpeg/webp; JPEG loses transparency (flattened onto white)."""
    fmt = normalize_format(fmt)
    out = io.BytesIO()
    if fmt == "jpeg":
        _flatten(image).save(out, "JPEG", quality=quality, optimize=True)
    elif fmt == "webp":
        keep_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
        image.convert("RGBA" if keep_alpha else "RGB").save(out, "WEBP", quality=quality)
    else:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(out, "PNG")
    return out.getvalue()


def convert_format(data: bytes, fmt: str) -> bytes:
    """Re-encode ``data`` as ``fmt`` (png, jpeg/jpg or webp).

    Always re-encodes, so metadata such as EXIF is dropped (the EXIF
    orientation is applied first). Converting to JPEG flattens transparency
    onto white. ValueError for an unknown ``fmt``, ``InvalidImage`` for bad data.
    """
    fmt = normalize_format(fmt)
    with open_image(data) as image:
        return encode(ImageOps.exif_transpose(image), fmt)


def thumbnail(data: bytes, max_side: int) -> bytes:
    """JPEG preview no larger than ``max_side`` on its long side, fit to send as a Telegram photo.

    Never upscales. Telegram photos must be at most 10 MB, with width + height
    at most 10000 and a side ratio of at most 20, so the result is shrunk
    further if needed, padded with white if the ratio is extreme, and
    re-encoded at lower quality until it fits the byte limit.
    """
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    with open_image(data) as opened:
        image = _flatten(ImageOps.exif_transpose(opened))
    image = _pad_to_ratio(image, TELEGRAM_PHOTO_MAX_RATIO)
    width, height = image.size
    scale = min(1.0, max_side / max(width, height), TELEGRAM_PHOTO_MAX_SIDES_SUM / (width + height))
    if scale < 1.0:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    for quality in (85, 75, 60, 45, 30):
        out = encode(image, "jpeg", quality=quality)
        if len(out) <= TELEGRAM_PHOTO_MAX_BYTES:
            return out
    # Practically unreachable at <= 10000 px of sides, but never hand Telegram an oversized photo.
    image = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    return encode(image, "jpeg", quality=30)


def _pad_to_ratio(image: Image.Image, max_ratio: float) -> Image.Image:
    width, height = image.size
    if max(width, height) <= max_ratio * min(width, height):
        return image
    if width > height:
        size = (width, int(width / max_ratio) + 1)
    else:
        size = (int(height / max_ratio) + 1, height)
    canvas = Image.new("RGB", size, (255, 255, 255))
    canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
    return canvas


def a4_canvas_size(dpi: int) -> tuple[int, int]:
    """Pixel size of a portrait A4 page at ``dpi``."""
    return (round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi))


def to_coloring_page(data: bytes, *, dpi: int = 150, margin_mm: float = 12.0) -> bytes:
    """Turn an image into a printable black-and-white colouring page (PNG, A4 portrait).

    The picture is scaled to fit the page inside ``margin_mm`` margins (aspect
    kept, centred) and median-filtered so texture and noise do not become
    scribbles. Outlines come from a difference of Gaussians on each colour
    channel, keeping only the darker side of every edge: a step between two
    regions (even two of equal brightness but different hue) becomes one line,
    while smooth gradients such as a sky give no response. The threshold
    adapts so that at most about a tenth of the picture becomes line, but
    never goes below a small floor, so a flat image gives a blank page rather
    than noise. Specks are then removed.

    The result is a mode "L" PNG containing only 0 (line) and 255 (paper), with
    its DPI recorded, at ``dpi`` (150 or 300) pixels per inch.
    """
    if dpi not in (150, 300):
        raise ValueError("dpi must be 150 or 300")
    page_w, page_h = a4_canvas_size(dpi)
    margin = round(margin_mm / 25.4 * dpi)
    box_w, box_h = page_w - 2 * margin, page_h - 2 * margin

    with open_image(data) as opened:
        rgb = _flatten(ImageOps.exif_transpose(opened))
    scale = min(box_w / rgb.width, box_h / rgb.height)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))

    # Edges are found at 150 DPI (filters are tuned there and it is 4x cheaper);
    # for 300 DPI the smooth edge response is upscaled before thresholding, so
    # the lines come out crisp at full resolution rather than pixelated.
    work_scale = scale * 150 / dpi
    work_size = (max(1, round(rgb.width * work_scale)), max(1, round(rgb.height * work_scale)))
    response = _edge_response(rgb.resize(work_size, Image.Resampling.LANCZOS))
    threshold = max(_LINE_FLOOR, _percentile(response, _LINE_SHARE))
    if response.size != size:
        response = response.resize(size, Image.Resampling.BICUBIC)
    lines = response.point(lambda v: 0 if v >= threshold else 255)
    # Drop specks; a median of a strict 0/255 image is still strictly 0/255.
    lines = lines.filter(ImageFilter.MedianFilter(3 if dpi == 150 else 5))

    page = Image.new("L", (page_w, page_h), 255)
    page.paste(lines, ((page_w - size[0]) // 2, (page_h - size[1]) // 2))
    out = io.BytesIO()
    page.save(out, "PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


# Tuned by eye at 150 DPI on generated art and flat shapes.
_DOG_SIGMA: Final = 2.0
_DOG_RATIO: Final = 2.0
_LINE_FLOOR: Final = 3  # grey levels of edge response; weaker is not an edge
_LINE_SHARE: Final = 0.90  # percentile: lines cover at most ~10% of the picture


def _edge_response(rgb: Image.Image) -> Image.Image:
    """Edge strength (0..255, "L") of an RGB picture: difference of Gaussians, darker side only."""
    rgb = ImageOps.autocontrast(rgb, cutoff=1)
    # Median keeps region borders sharp while flattening texture and noise.
    rgb = rgb.filter(ImageFilter.MedianFilter(5))
    response: Image.Image | None = None
    for channel in rgb.split():
        near = channel.filter(ImageFilter.GaussianBlur(_DOG_SIGMA))
        wide = channel.filter(ImageFilter.GaussianBlur(_DOG_SIGMA * _DOG_RATIO))
        # Positive where a pixel is darker than its surroundings: one side of each edge only,
        # so every edge gives a single line. Per channel, so hue-only edges count too.
        darker = ImageChops.subtract(wide, near)
        response = darker if response is None else ImageChops.lighter(response, darker)
    assert response is not None
    return response


def _percentile(image: Image.Image, fraction: float) -> int:
    """The grey level below which ``fraction`` of the pixels lie."""
    histogram = image.histogram()
    target = fraction * sum(histogram)
    running = 0
    for level, count in enumerate(histogram):
        running += count
        if running >= target:
            return level
    return 255


class PillowImages:
    """The ``ImageProcessor`` port (``lumigram.services.ports``) implemented with Pillow.

    Synchronous and CPU-bound like everything here: the services call it
    through ``asyncio.to_thread``.
    """

    def probe(self, data: bytes) -> ImageInfo:
        return probe_image(data)

    def to_coloring_page(self, data: bytes) -> bytes:
        return to_coloring_page(data)
