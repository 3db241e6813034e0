"""Placeholder image rendering: PNG (RGBA for a background remover), JPEG or WebP.

Images are meant to be *obviously* fake (coloured background, border, diagonal cross and a
text label, all drawn by ``labels.py``, which the MP4 renderer shares) while staying cheap.
They are drawn in palette indices (7 colours), which the PNG stores unfiltered at 4 bits a
pixel, and their colours live in the PNG's palette alone, so every row outside the label's
panel depends on the image's size and nothing else. A size's frame (background, cross and
border) is kept, for the sizes rendered last (``_Frames``, at most 32 MiB), as the PNG's
scanlines deflated by zlib in independent, byte-aligned segments of at most 32 KiB, with their
adler32 checksums. A render lays out the label, paints its panel onto a copy of the frame's
rows it covers, has zlib deflate those rows alone, and joins zlib's header, the frame's
segments above them, the new segments, the frame's segments below, zlib's last (empty) block
and the adler32 of the whole, combined from the parts' (``_adler32_combine``). zlib-ng (the
``zlib-ng`` package: on these images the very bytes the system's zlib writes, in under half
its time) does all the compressing: this module frames the stream and the PNG chunks (with
Pillow's chunk writer; Pillow packs the rows). A 1024x1024 render takes under 1 ms on a quiet
CPU, under a third of Pillow encoding the whole canvas; a size's first render, which draws and
deflates the frame, about 3 ms. ``benchmarks/render_png.py`` splits it.

The transparent (RGBA) variant is saved by Pillow's PNG encoder: its colours are in its rows,
so none of them is the same for every seed.
"""

from __future__ import annotations

import io
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from PIL import Image
from PIL.PngImagePlugin import putchunk
from zlib_ng import zlib_ng

from . import labels

__all__ = ["PNG_OPTIONS", "Placeholder", "encode_as", "render_png"]

#: zlib's level and strategy, as Pillow's PNG options (the transparent variant's encoder). On
#: these flat palette images levels 1-3 cost the same and level 6 is ~2.5x slower; the
#: run-length strategy is as fast as level 1 and gives 8-35% smaller files at the catalogue's
#: sizes (long runs of one index are what it encodes well).
PNG_OPTIONS: Mapping[str, int] = MappingProxyType(
    {"compress_level": 1, "compress_type": zlib_ng.Z_RLE}
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
    buf = io.BytesIO()
    if transparent:  # a background remover's output: RGBA, the background fully transparent
        canvas = labels.draw_placeholder(w, h, label, load=_load_font)
        canvas.putpalette(labels.palette(p.seed))  # "L" -> "P": pixel values are already indices
        canvas.info["transparency"] = labels.BG
        canvas.convert("RGBA").save(buf, "PNG", **PNG_OPTIONS)
        return buf.getvalue()
    panel = labels.label_panel(w, h, label, load=_load_font)
    buf.write(_SIGNATURE)
    # 4 bits a pixel, colour type 3 (palette); deflate, row filters by type, no interlacing
    putchunk(buf, b"IHDR", struct.pack(">IIBBBBB", w, h, 4, 3, 0, 0, 0))
    putchunk(buf, b"PLTE", bytes(labels.palette(p.seed)[: 3 * _COLOURS]))
    putchunk(buf, b"IDAT", _FRAMES.get(w, h).stream(panel))
    putchunk(buf, b"IEND")
    return buf.getvalue()


_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the palette entries a drawing uses (background, line, panel, the text ramp): 7, where 4 bits
#: a pixel allow 16, so the file's scanlines are half the bytes of 8 bits a pixel for zlib
_COLOURS = labels.TEXT + 1
#: the palette an "L" drawing is given to be packed 4 bits a pixel (its indices are unchanged)
_PACKING_PALETTE = bytes(3 * _COLOURS)
#: The most bytes of scanlines in one segment (at least one row). zlib never slides its window
#: (32 KiB, in a 64 KiB buffer) within a segment, since a full flush starts it over.
_SEGMENT_BYTES = 32 * 1024
# zlib's empty stream: the 2-byte header, the last (empty) block, then the adler32 of nothing
_EMPTY = zlib_ng.compress(b"", PNG_OPTIONS["compress_level"])
_ZLIB_HEADER, _LAST_BLOCK = _EMPTY[:2], _EMPTY[2:-4]
_ADLER_BASE = 65521


def _adler32_combine(first: int, second: int, length: int) -> int:
    """``zlib.adler32(a + b)`` from ``zlib.adler32(a)``, ``zlib.adler32(b)`` and ``len(b)``
    (zlib's ``adler32_combine``, which Python's zlib does not expose)."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + length * (a1 - 1)) % _ADLER_BASE
    return b << 16 | a


def _deflate(parts: Iterable[memoryview]) -> list[bytes]:
    """Each part deflated into its own segment: byte-aligned and referring to nothing before it
    (a full flush after each part), so segments of different streams can be joined."""
    level, strategy = PNG_OPTIONS["compress_level"], PNG_OPTIONS["compress_type"]
    z = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, zlib_ng.DEF_MEM_LEVEL, strategy)
    return [z.compress(part) + z.flush(zlib_ng.Z_FULL_FLUSH) for part in parts]


def _packed(scanlines: Image.Image) -> bytes:
    """The PNG's scanlines of a drawing in palette indices whose first two columns are 0: two
    pixels a byte (Pillow's ``P;4`` packer), so those columns are each row's filter-type byte
    (0: none) and a row of an odd width ends with a 0 nibble, as PNG pads it. `scanlines`
    becomes a "P" image: pass a copy."""
    scanlines.putpalette(_PACKING_PALETTE)  # "L" -> "P", the same pixels
    return scanlines.tobytes("raw", "P;4")


def _split(data: bytes, size: int) -> list[memoryview]:
    view = memoryview(data)
    return [view[i : i + size] for i in range(0, len(data), size)]


class _Frame(NamedTuple):
    """A size's frame, drawn in palette indices two columns wider than the picture (the
    columns that pack into each scanline's filter-type byte, see :func:`_packed`), and as the
    PNG's scanlines deflated in segments of `rows` rows, with the adler32 of the scanlines
    before and after each boundary."""

    scanlines: Image.Image  # "L", (width + 2) x height
    line: int  # bytes a packed scanline: the filter-type byte and the row's pixels
    rows: int
    segments: tuple[bytes, ...]
    before: tuple[int, ...]  # before[i]: adler32 of the scanlines of segments[:i]
    after: tuple[int, ...]  # after[i]: adler32 of the scanlines of segments[i:]

    @classmethod
    def draw(cls, width: int, height: int) -> _Frame:
        scanlines = Image.new("L", (width + 2, height), 0)  # columns 0-1: the filter types
        scanlines.paste(labels.draw_frame(width, height), (2, 0))
        line = (width + 3) // 2
        rows = max(1, _SEGMENT_BYTES // line)
        parts = _split(_packed(scanlines.copy()), rows * line)
        adlers = [zlib_ng.adler32(part) for part in parts]
        before, after, tail = [1], [1], 0
        for part, adler in zip(parts, adlers, strict=True):
            before.append(_adler32_combine(before[-1], adler, len(part)))
        for part, adler in zip(reversed(parts), reversed(adlers), strict=True):
            after.append(_adler32_combine(adler, after[-1], tail))
            tail += len(part)
        return cls(
            scanlines, line, rows, tuple(_deflate(parts)), tuple(before), tuple(reversed(after))
        )

    @property
    def nbytes(self) -> int:
        return self.scanlines.width * self.scanlines.height + sum(map(len, self.segments))

    def band(self, panel: labels.Panel) -> tuple[int, int, bytes]:
        """The segments ``[first, last)`` that `panel`'s rows fall in, and their scanlines with
        the panel painted on them."""
        columns, height = self.scanlines.size
        first = max(0, panel.rows.start) // self.rows
        last = min(len(self.segments), -(-panel.rows.stop // self.rows))
        image = self.scanlines.crop((0, first * self.rows, columns, min(height, last * self.rows)))
        panel.paint(image, (2, -first * self.rows))
        return first, last, _packed(image)

    def stream(self, panel: labels.Panel | None) -> bytes:
        """The PNG's zlib stream: this frame with `panel` painted on it. Only the segments the
        panel's rows fall in are deflated again."""
        first, last, data = (0, 0, b"") if panel is None else self.band(panel)
        line, height = self.line, self.scanlines.height
        tail = (height - first * self.rows) * line - len(data)  # bytes of scanlines after data
        adler = _adler32_combine(self.before[first], zlib_ng.adler32(data), len(data))
        adler = _adler32_combine(adler, self.after[last], tail)
        return b"".join(
            (
                _ZLIB_HEADER,
                *self.segments[:first],
                *_deflate(_split(data, self.rows * line)),
                *self.segments[last:],
                _LAST_BLOCK,
                adler.to_bytes(4, "big"),
            )
        )


class _Frames:
    """The frames of the sizes rendered last (LRU), at most `max_bytes` of them; a frame
    bigger than that is drawn for its render and not kept. Shared by the render threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self._frames: OrderedDict[tuple[int, int], _Frame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, width: int, height: int) -> _Frame:
        key = (width, height)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
        frame = _Frame.draw(width, height)  # outside the lock: two threads may both draw it
        with self._lock:
            if key not in self._frames and frame.nbytes <= self.max_bytes:
                self._frames[key] = frame
                self.size_bytes += frame.nbytes
                while self.size_bytes > self.max_bytes:
                    self.size_bytes -= self._frames.popitem(last=False)[1].nbytes
        return frame

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self.size_bytes = 0


#: 32 MiB: every cogview-4 size (about 1 MiB each) and a few 2K frames, or one 4096x4096
_FRAMES = _Frames(max_bytes=32 << 20)


#: Pillow's format name and options per file extension of an image tool's ``output_format``
_FORMATS = {"jpg": ("JPEG", {"quality": 85}), "webp": ("WEBP", {"quality": 80, "method": 0})}


def encode_as(png: bytes, ext: str) -> bytes:
    """A rendered PNG in another format (``jpg`` or ``webp``), deterministic."""
    name, options = _FORMATS[ext]
    with Image.open(io.BytesIO(png)) as image:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, name, **options)
    return buf.getvalue()
