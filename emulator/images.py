"""Placeholder image rendering: PNG (RGBA for a background remover), JPEG or WebP.

Images are meant to be *obviously* fake (coloured background, border, diagonal cross and a
text label, all drawn by ``labels.py``, which the MP4 renderer shares) while staying cheap:
everything is drawn on an 8-bit canvas whose pixel values are palette indices, so the PNG
encoder sees one byte per pixel and no row filtering, which makes a 1440x720 image encode in a
few milliseconds instead of tens. zlib's own work on those bytes is then most of a render
(``benchmarks/render_png.py`` splits it).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image

from . import labels

__all__ = ["PNG_OPTIONS", "Placeholder", "encode_as", "render_png"]

#: Pillow's PNG options for the stream. On these flat palette images levels 1-3 cost the same
#: and level 6 is ~2.5x slower; the run-length strategy is as fast as level 1 and gives 8-35%
#: smaller files at the catalogue's sizes (long runs of one index are what it encodes well).
PNG_OPTIONS: Mapping[str, int] = MappingProxyType(
    {"compress_level": 1, "compress_type": zlib.Z_RLE}
)
# The label's font loader, looked up at each render so that a test can swap in the bitmap
# fallback; and the names the image tests have always used for the shared helpers.
_load_font = labels.load_font
_colours = labels.colours
_luminance = labels.luminance
_clean = labels.clean
_PANEL = labels.PANEL


@dataclass(frozen=True, slots=True)
class Placeholder:
    """Everything that determines the pixels of one placeholder image."""

    width: int
    height: int
    seed: int  # drives the background colour
    model: str
    prompt: str  # arbitrary user text; sanitised before drawing
    task_id: str
    index: int = 0  # which image of the task (0-based)
    count: int = 1  # how many images the task has


def render_png(p: Placeholder, *, max_pixels: int, transparent: bool = False) -> bytes:
    """Encode the placeholder as PNG bytes (deterministic for a given `Placeholder`).

    Raises ValueError before allocating anything if a side is < 1 or the pixel count
    exceeds `max_pixels`, so a hostile size can never trigger a huge allocation.
    """
    w, h = p.width, p.height
    if w < 1 or h < 1:
        raise ValueError(f"image size {w}x{h} is invalid: width and height must be >= 1")
    if w * h > max_pixels:
        raise ValueError(
            f"image size {w}x{h} ({w * h} pixels) exceeds the limit of {max_pixels} pixels"
        )

    detail = f"image {p.index + 1}/{p.count}" if p.count > 1 else ""
    label = labels.Label(model=p.model, prompt=p.prompt, task_id=p.task_id, detail=detail)
    canvas = labels.draw_placeholder(w, h, label, load=_load_font)
    canvas.putpalette(labels.palette(p.seed))  # "L" -> "P": pixel values are already indices
    image: Image.Image = canvas
    if transparent:  # a background remover's output: RGBA, the background fully transparent
        canvas.info["transparency"] = labels.BG
        image = canvas.convert("RGBA")
    buf = io.BytesIO()
    image.save(buf, "PNG", **PNG_OPTIONS)
    return buf.getvalue()


#: Pillow's format name and options per file extension of an image tool's ``output_format``
_FORMATS = {"jpg": ("JPEG", {"quality": 85}), "webp": ("WEBP", {"quality": 80, "method": 0})}


def encode_as(png: bytes, ext: str) -> bytes:
    """A rendered PNG in another format (``jpg`` or ``webp``), deterministic."""
    name, options = _FORMATS[ext]
    with Image.open(io.BytesIO(png)) as image:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, name, **options)
    return buf.getvalue()
