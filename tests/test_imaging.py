"""Image helpers: probing untrusted bytes, format conversion, previews and colouring pages."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageDraw

from lumigram import imaging
from lumigram.imaging import (
    ImageInfo,
    InvalidImage,
    convert_format,
    probe_image,
    thumbnail,
    to_coloring_page,
)
from lumigram.providers.demo import render_art


def encoded(
    fmt: str,
    size: tuple[int, int] = (60, 40),
    colour: tuple[int, ...] = (10, 120, 200),
    mode: str = "RGB",
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, fmt)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header (with a correct CRC) claims another size: a bomb's shape."""
    data = bytearray(encoded("PNG", (1, 1)))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21]))
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


# --- probe_image ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "mime"),
    [("PNG", "png", "image/png"), ("JPEG", "jpeg", "image/jpeg"), ("WEBP", "webp", "image/webp")],
)
def test_probe_reports_format_and_size(fmt: str, name: str, mime: str) -> None:
    assert probe_image(encoded(fmt)) == ImageInfo(format=name, mime_type=mime, width=60, height=40)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not an image",
        b"%PDF-1.7\n",
        encoded("GIF"),
        encoded("BMP"),
        encoded("PNG", (300, 300))[:200],  # truncated
        encoded("JPEG", (300, 300))[:300],  # truncated
    ],
    ids=["empty", "text", "pdf", "gif", "bmp", "truncated-png", "truncated-jpeg"],
)
def test_probe_rejects_non_images_and_corrupt_data(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        probe_image(data)


def test_probe_rejects_corrupt_png_chunk() -> None:
    data = bytearray(encoded("PNG", (50, 50)))
    data[40] ^= 0xFF  # inside IDAT
    with pytest.raises(InvalidImage):
        probe_image(bytes(data))


@pytest.mark.parametrize("size", [(10_000, 10_000), (200_000, 200_000)])
def test_probe_rejects_decompression_bombs_from_the_header(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidImage, match=r"too large|over the limit"):
        probe_image(png_claiming_size(*size))


def test_probe_pixel_limit_is_configurable() -> None:
    data = encoded("PNG", (100, 100))
    with pytest.raises(InvalidImage, match="over the limit"):
        probe_image(data, max_pixels=9_999)
    assert probe_image(data, max_pixels=10_000).width == 100


# --- convert_format ---------------------------------------------------------------


@pytest.mark.parametrize("source", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize(
    ("target", "expected"), [("png", "png"), ("jpeg", "jpeg"), ("jpg", "jpeg"), ("WEBP", "webp")]
)
def test_convert_format(source: str, target: str, expected: str) -> None:
    info = probe_image(convert_format(encoded(source), target))
    assert (info.format, info.width, info.height) == (expected, 60, 40)


def test_convert_to_jpeg_flattens_transparency_onto_white() -> None:
    transparent = encoded("PNG", (20, 20), (255, 0, 0, 0), mode="RGBA")
    image = decoded(convert_format(transparent, "jpeg"))
    assert image.mode == "RGB"
    pixel = image.getpixel((10, 10))
    assert isinstance(pixel, tuple)
    assert min(pixel) > 240


def test_convert_keeps_transparency_where_the_format_has_it() -> None:
    transparent = encoded("PNG", (20, 20), (255, 0, 0, 0), mode="RGBA")
    assert decoded(convert_format(transparent, "webp")).mode == "RGBA"
    assert decoded(convert_format(transparent, "png")).mode == "RGBA"


def test_convert_rejects_unknown_formats_and_bad_data() -> None:
    with pytest.raises(ValueError, match="unsupported image format"):
        convert_format(encoded("PNG"), "gif")
    with pytest.raises(InvalidImage):
        convert_format(b"nope", "png")


# --- thumbnail ---------------------------------------------------------------------


def test_thumbnail_is_a_jpeg_within_max_side_keeping_aspect() -> None:
    data = thumbnail(encoded("PNG", (400, 200)), 100)
    info = probe_image(data)
    assert (info.format, info.width, info.height) == ("jpeg", 100, 50)


def test_thumbnail_never_upscales() -> None:
    info = probe_image(thumbnail(encoded("WEBP", (60, 40)), 1280))
    assert (info.width, info.height) == (60, 40)


def test_thumbnail_pads_extreme_ratios_for_telegram() -> None:
    info = probe_image(thumbnail(encoded("PNG", (2100, 50)), 5000))
    assert info.width / info.height <= imaging.TELEGRAM_PHOTO_MAX_RATIO
    assert info.width == 2100


def test_thumbnail_keeps_width_plus_height_within_telegram_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(imaging, "TELEGRAM_PHOTO_MAX_SIDES_SUM", 100)
    info = probe_image(thumbnail(encoded("PNG", (90, 80)), 1000))
    assert info.width + info.height <= 100


def test_thumbnail_rejects_a_nonsense_size() -> None:
    with pytest.raises(ValueError, match="max_side"):
        thumbnail(encoded("PNG"), 0)


# --- to_coloring_page ----------------------------------------------------------------

A4_RATIO = 297 / 210


def shapes(size: tuple[int, int] = (400, 200)) -> bytes:
    """Flat colour shapes with an inset frame; two regions differ in hue only."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w * 0.05, h * 0.05, w * 0.95, h * 0.95), outline=(0, 0, 0), width=4)
    draw.ellipse((w * 0.15, h * 0.2, w * 0.45, h * 0.8), fill=(200, 40, 40))
    draw.rectangle((w * 0.55, h * 0.2, w * 0.85, h * 0.8), fill=(40, 160, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def levels(image: Image.Image) -> set[int]:
    """The grey levels present in an image."""
    return {level for level, count in enumerate(image.convert("L").histogram()) if count}


def black_bbox(page: Image.Image) -> tuple[int, int, int, int]:
    inverted = page.point(lambda v: 255 - v)
    box = inverted.getbbox()
    assert box is not None, "the page has no lines"
    return box


@pytest.mark.parametrize("dpi", [150, 300])
def test_coloring_page_is_two_tone_a4_with_dpi(dpi: int) -> None:
    art = render_art("a quiet valley", seed=4, aspect_ratio="16:9", long_side=256)
    page = decoded(to_coloring_page(art, dpi=dpi))
    assert page.format == "PNG"
    assert page.mode in ("L", "1")
    assert levels(page) == {0, 255}
    assert page.size == imaging.a4_canvas_size(dpi)
    assert page.height / page.width == pytest.approx(A4_RATIO, rel=0.01)
    assert page.width == pytest.approx(210 / 25.4 * dpi, abs=1)
    assert page.info["dpi"] == pytest.approx((dpi, dpi), abs=0.1)


def test_coloring_page_is_mostly_white_with_outlines() -> None:
    page = decoded(to_coloring_page(shapes()))
    histogram = page.histogram()
    black, white = histogram[0], histogram[255]
    assert black > 0
    assert black / (black + white) < 0.12  # outlines, not filled areas


def test_coloring_page_keeps_margins_white_and_centres_the_picture() -> None:
    page = decoded(to_coloring_page(shapes((400, 200)), margin_mm=12.0))
    margin = round(12 / 25.4 * 150)
    left, top, right, bottom = black_bbox(page)
    assert left >= margin
    assert top >= margin
    assert right <= page.width - margin
    assert bottom <= page.height - margin
    # The frame spans the picture: the wide 2:1 picture keeps its aspect and sits in the middle.
    assert (right - left) / (bottom - top) == pytest.approx(2.0, rel=0.06)
    assert (left + right) / 2 == pytest.approx(page.width / 2, abs=4)
    assert (top + bottom) / 2 == pytest.approx(page.height / 2, abs=4)


def test_coloring_page_fills_the_printable_width() -> None:
    page = decoded(to_coloring_page(shapes((400, 200))))
    left, _, right, _ = black_bbox(page)
    printable = page.width - 2 * round(12 / 25.4 * 150)
    assert right - left > 0.85 * printable


def test_coloring_page_outlines_edges_of_equal_brightness_but_different_hue() -> None:
    image = Image.new("RGB", (200, 200), (200, 60, 60))
    red_luma = sum(c * w for c, w in zip((200, 60, 60), (0.299, 0.587, 0.114), strict=True))
    green = (60, round((red_luma - 60 * 0.299 - 60 * 0.114) / 0.587), 60)
    ImageDraw.Draw(image).rectangle((100, 0, 199, 199), fill=green)
    out = io.BytesIO()
    image.save(out, "PNG")
    page = decoded(to_coloring_page(out.getvalue()))
    assert page.histogram()[0] > 0


def test_flat_image_gives_a_blank_page() -> None:
    page = decoded(to_coloring_page(encoded("JPEG", (300, 300), (90, 140, 200))))
    assert page.histogram()[0] == 0


def test_coloring_page_accepts_transparent_png() -> None:
    image = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((20, 20, 100, 100), fill=(30, 30, 200, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    page = decoded(to_coloring_page(out.getvalue()))
    assert levels(page) == {0, 255}


def test_coloring_page_rejects_bad_input() -> None:
    with pytest.raises(InvalidImage):
        to_coloring_page(b"garbage")
    with pytest.raises(ValueError, match="dpi"):
        to_coloring_page(shapes(), dpi=72)
