"""Placeholder PNG rendering and a small byte-bounded LRU cache of rendered images.

Images are meant to be *obviously* fake (coloured background, border, diagonal cross and a
text label, all drawn by ``labels.py``, which the MP4 renderer shares) while staying cheap:
everything is drawn on an 8-bit canvas whose pixel values are palette indices, so the PNG
encoder sees one byte per pixel and no row filtering, which makes a 1440x720 image encode in a
few milliseconds instead of tens.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

from . import labels

__all__ = ["ImageCache", "Placeholder", "RenderedImage", "encode_as", "render_png"]

# zlib settings for the PNG stream. On these flat palette images levels 1-3 cost the same
# and level 6 is ~2.5x slower; the run-length strategy is as fast as level 1 and gives
# 20-35% smaller files (long runs of one index are exactly what it encodes well).
_COMPRESS_LEVEL = 1
_COMPRESS_TYPE = zlib.Z_RLE
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


@dataclass(frozen=True, slots=True)
class RenderedImage:
    """Encoded PNG bytes plus a strong ETag (quoted blake2b-128 hex of the body)."""

    body: bytes
    etag: str


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
    image.save(buf, "PNG", compress_level=_COMPRESS_LEVEL, compress_type=_COMPRESS_TYPE)
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


def _etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


class ImageCache:
    """LRU cache of rendered images keyed by (task_id, index), bounded by total body bytes.

    Not thread-safe: it is used from a single event loop. An image larger than the whole
    budget is returned but not stored.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int], RenderedImage] = OrderedDict()
        self._by_task: dict[str, set[int]] = {}
        self._size = 0

    def get_or_render(
        self, key: tuple[str, int], p: Placeholder, *, max_pixels: int
    ) -> RenderedImage:
        """Return the cached image for `key`, rendering and storing it on a miss."""
        hit = self.get(key)
        if hit is not None:
            return hit
        body = render_png(p, max_pixels=max_pixels)
        image = RenderedImage(body=body, etag=_etag(body))
        if len(body) <= self._max_bytes:
            self._entries[key] = image
            self._by_task.setdefault(key[0], set()).add(key[1])
            self._size += len(body)
            while self._size > self._max_bytes:
                self._remove(next(iter(self._entries)))
        return image

    def get(self, key: tuple[str, int]) -> RenderedImage | None:
        """The cached image for `key` (now the most recently used), or None."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def discard(self, task_id: str) -> None:
        """Drop every cached image of `task_id` (called when the task expires)."""
        indexes = self._by_task.get(task_id)
        for index in list(indexes) if indexes is not None else ():
            self._remove((task_id, index))

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._by_task.clear()
        self._size = 0

    def _remove(self, key: tuple[str, int]) -> None:
        image = self._entries.pop(key)
        self._size -= len(image.body)
        indexes = self._by_task[key[0]]
        indexes.discard(key[1])
        if not indexes:
            del self._by_task[key[0]]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Total size of the cached PNG bodies."""
        return self._size
