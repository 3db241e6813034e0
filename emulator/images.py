"""Placeholder PNG rendering and a small byte-bounded LRU cache of rendered images.

This is the only module of the emulator that imports Pillow. Images are meant to be
*obviously* fake (coloured background, border, diagonal cross and a text label) while
staying cheap: everything is drawn on an 8-bit canvas whose pixel values are palette
indices, so the PNG encoder sees one byte per pixel and no row filtering, which makes a
1440x720 image encode in a few milliseconds instead of tens.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import unicodedata
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, features

__all__ = ["ImageCache", "Placeholder", "RenderedImage", "encode_as", "render_png"]

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# zlib settings for the PNG stream. On these flat palette images levels 1-3 cost the same
# and level 6 is ~2.5x slower; the run-length strategy is as fast as level 1 and gives
# 20-35% smaller files (long runs of one index are exactly what it encodes well).
_COMPRESS_LEVEL = 1
_COMPRESS_TYPE = zlib.Z_RLE
# Palette index layout. The canvas is drawn in mode "L" with these values, then turned into
# a "P" image by attaching the palette (no pixel conversion needed).
_BG, _LINE, _PANEL, _TEXT0 = 0, 1, 2, 3  # _TEXT0.._TEXT0+3: anti-aliasing ramp, last = text
_RAMP = (0.3, 0.55, 0.8, 1.0)  # text coverage represented by each ramp entry
# More than 16 palette entries keeps Pillow at bit depth 8; packing to 4 bits per pixel
# costs more time in Pillow than it saves in zlib.
_PALETTE_ENTRIES = 17
# Maps anti-aliased text coverage (0..255) to the panel -> text palette ramp.
_COVERAGE_LUT = [_PANEL + sum(v >= t for t in (40, 100, 170, 230)) for v in range(256)]
_PROMPT_CHARS = 60
_ELLIPSIS = "\u2026"
_LOW_CONTRAST_LUMINANCE = 0.179  # luminance where black and white text contrast equally
_DARK_TEXT: RGB = (20, 22, 26)
_LIGHT_TEXT: RGB = (248, 248, 246)


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

    bg, line, panel, text = _colours(p.seed)
    canvas = Image.new("L", (w, h), _BG)
    draw = ImageDraw.Draw(canvas)
    stroke = max(1, min(w, h) // 256)
    draw.line((0, 0, w - 1, h - 1), fill=_LINE, width=stroke)
    draw.line((w - 1, 0, 0, h - 1), fill=_LINE, width=stroke)
    draw.rectangle((0, 0, w - 1, h - 1), outline=_LINE, width=stroke)
    _draw_label(canvas, draw, p, stroke)

    palette: list[int] = []
    for colour in (bg, line, panel, *(_mix(panel, text, t) for t in _RAMP)):
        palette.extend(colour)
    palette.extend([0, 0, 0] * (_PALETTE_ENTRIES - len(palette) // 3))
    canvas.putpalette(palette)  # "L" -> "P": pixel values are already palette indices
    image: Image.Image = canvas
    if transparent:  # a background remover's output: RGBA, the background fully transparent
        canvas.info["transparency"] = _BG
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


# --------------------------------------------------------------------------- colours


def _colours(seed: int) -> tuple[RGB, RGB, RGB, RGB]:
    """Background, line, label-panel and text colours derived deterministically from seed.

    The background is a mid-saturation, mid-lightness colour with a hashed hue; the panel
    behind the text pushes it further from the text colour so the label stays readable.
    """
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8, person=b"aio-placeholder").digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    lightness = 0.42 + 0.30 * digest[2] / 255
    saturation = 0.35 + 0.25 * digest[3] / 255
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    bg: RGB = (round(r * 255), round(g * 255), round(b * 255))
    if _luminance(bg) > _LOW_CONTRAST_LUMINANCE:
        panel, far = _mix(bg, (255, 255, 255), 0.5), _DARK_TEXT
    else:
        panel, far = _mix(bg, (0, 0, 0), 0.4), _LIGHT_TEXT
    text = _DARK_TEXT if _luminance(panel) > _LOW_CONTRAST_LUMINANCE else _LIGHT_TEXT
    line = _mix(bg, far, 0.35)
    return bg, line, panel, text


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _luminance(c: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])


# --------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=128)
def _load_font(size: int) -> Font:
    """Pillow's bundled scalable font at `size` px, or the fixed bitmap font without FreeType."""
    if features.check_module("freetype2"):
        return ImageFont.load_default(size=size)
    return ImageFont.load_default_imagefont()


@dataclass(frozen=True, slots=True)
class _Glyph:
    mask: Image.Image | None  # coverage 0..255; None for blank glyphs such as space
    dx: int  # mask position relative to the pen (top of the ascender, "la" anchor)
    dy: int
    advance: float


@functools.lru_cache(maxsize=2048)
def _glyph(font: Font, ch: str) -> _Glyph:
    """Rasterise one character once per font (FreeType: ~25 us a glyph; a paste: a few us).

    Composing lines from cached glyphs (no shaping, no kerning, no bidi reordering) is
    good enough for a placeholder and makes the label several times cheaper to draw.
    """
    if not isinstance(font, ImageFont.FreeTypeFont):
        ch = ch.encode("latin-1", "replace").decode("latin-1")  # bitmap font is Latin-1 only
    advance = float(font.getlength(ch))
    x0, y0, x1, y1 = (int(v) for v in font.getbbox(ch))
    if x1 <= x0 or y1 <= y0:
        return _Glyph(None, 0, 0, advance)
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).text((-x0, -y0), ch, fill=255, font=font)
    return _Glyph(mask, x0, y0, advance)


@functools.lru_cache(maxsize=256)
def _has_glyph(font: Font, ch: str) -> bool:
    """Whether `font` draws `ch` as something other than its missing-glyph box."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ord(ch) < 256
    a, b = _glyph(font, ch), _glyph(font, "\uffff")  # U+FFFF never has a glyph
    if a.mask is None or b.mask is None:
        return a.mask is not b.mask
    return (a.dx, a.dy, a.mask.tobytes()) != (b.dx, b.dy, b.mask.tobytes())


def _width(font: Font, text: str) -> float:
    return sum(_glyph(font, ch).advance for ch in text)


def _draw_text(mask: Image.Image, x: float, y: int, text: str, font: Font) -> None:
    """Draw `text` at full coverage (255) onto the "L" image `mask`, pen at (x, y)."""
    for ch in text:
        glyph = _glyph(font, ch)
        if glyph.mask is not None:
            mask.paste(255, (round(x) + glyph.dx, y + glyph.dy), glyph.mask)
        x += glyph.advance


def _clean(text: str, limit: int) -> str:
    """Printable excerpt of at most `limit` characters (ellipsis appended when cut).

    Control characters and any whitespace become single spaces, invisible format
    characters (bidi marks, zero-width joiners...) are dropped and lone surrogates become
    U+FFFD. Stops scanning early, so a huge input costs O(limit).
    """
    out: list[str] = []
    truncated = False
    pending_space = False
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" or ch.isspace():
            pending_space = bool(out)
            continue
        if category == "Cf":
            continue
        if len(out) + pending_space >= limit:
            truncated = True
            break
        if pending_space:
            out.append(" ")
            pending_space = False
        out.append("\ufffd" if category == "Cs" else ch)
    if truncated:
        return "".join(out[: limit - 1]).rstrip() + _ELLIPSIS
    return "".join(out)


def _longest_prefix(text: str, font: Font, max_width: float, suffix: str = "") -> int:
    """Largest n such that text[:n] + suffix fits in max_width (0 if none)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(font, text[:mid] + suffix) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fit(text: str, font: Font, max_width: float) -> str | None:
    """`text`, or its longest prefix plus an ellipsis, that fits; None if nothing fits."""
    if not text:
        return None
    if _width(font, text) <= max_width:
        return text
    ellipsis = _ELLIPSIS if _has_glyph(font, _ELLIPSIS) else "..."
    n = _longest_prefix(text, font, max_width, ellipsis)
    return text[:n].rstrip() + ellipsis if n else None


def _wrap(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines; the last one is ellipsised if cut."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines - 1 and _width(font, rest) > max_width:
        n = _longest_prefix(rest, font, max_width)
        if n == 0:
            return lines
        space = rest.rfind(" ", 0, n + 1)
        if space > 0:
            n = space
        lines.append(rest[:n].rstrip())
        rest = rest[n:].lstrip()
    last = _fit(rest, font, max_width)
    if last:
        lines.append(last)
    return lines


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    font: Font
    priority: int  # lower survives longer when the label does not fit vertically


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return int(font.getbbox("Ag")[3])


def _draw_label(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, p: Placeholder, stroke: int
) -> None:
    """Draw the centred text panel; lines that do not fit are shortened or skipped."""
    w, h = canvas.size
    size = max(12, min(48, h // 20, w // 24))
    font = _load_font(size)
    pad = max(2, size // 2)
    gap = max(2, size // 4)
    margin = 2 * stroke + 2
    max_width = w - 2 * (margin + pad)
    max_height = h - 2 * (margin + pad)
    if max_width < size or max_height < _line_height(font):
        return

    title_font = _load_font(round(size * 1.5))
    if _width(title_font, "PLACEHOLDER") > max_width:
        title_font = font
    times = "\u00d7" if _has_glyph(font, "\u00d7") else "x"
    candidates: list[_Line] = [
        _Line("PLACEHOLDER", title_font, 0),
        _Line(_clean(p.model, 80), font, 2),
        _Line(f"{p.width}{times}{p.height}", font, 1),
    ]
    if p.count > 1:
        candidates.append(_Line(f"image {p.index + 1}/{p.count}", font, 3))
    prompt = _clean(p.prompt, _PROMPT_CHARS)
    candidates.extend(
        _Line(text, font, 5 + i) for i, text in enumerate(_wrap(prompt, font, max_width, 2))
    )
    candidates.append(_Line(_clean(p.task_id, 80), font, 4))

    fitted = [
        _Line(text, c.font, c.priority)
        for c in candidates
        if (text := _fit(c.text, c.font, max_width)) is not None
    ]
    lines = _fit_vertically(fitted, max_height, gap)
    prompt_lines = [line for line in lines if line.priority >= 5]
    if len(prompt_lines) == 1 and len(prompt_lines[0].text) < len(prompt):
        # Only one prompt line survived: re-wrap so that line ends with an ellipsis.
        single = [*_wrap(prompt, font, max_width, 1), prompt_lines[0].text][0]
        lines = [_Line(single, font, 5) if ln.priority >= 5 else ln for ln in lines]
    if not lines:
        return

    widths = [_width(line.font, line.text) for line in lines]
    heights = [_line_height(line.font) for line in lines]
    panel_w = min(w - 2 * margin, int(max(widths)) + 2 * pad)
    panel_h = min(h - 2 * margin, sum(heights) + gap * (len(lines) - 1) + 2 * pad)
    mask = Image.new("L", (panel_w, panel_h), 0)
    y = pad
    for line, width, height in zip(lines, widths, heights, strict=True):
        _draw_text(mask, (panel_w - width) / 2, y, line.text, line.font)
        y += height + gap
    left, top = (w - panel_w) // 2, (h - panel_h) // 2
    canvas.paste(mask.point(_COVERAGE_LUT), (left, top))
    draw.rectangle((left - 1, top - 1, left + panel_w, top + panel_h), outline=_LINE, width=1)


def _fit_vertically(lines: Sequence[_Line], max_height: int, gap: int) -> list[_Line]:
    """Keep the highest-priority lines (in display order) whose stacked height fits."""
    kept: set[int] = set()
    used = -gap
    for i in sorted(range(len(lines)), key=lambda i: lines[i].priority):
        needed = _line_height(lines[i].font) + gap
        if used + needed <= max_height:
            kept.add(i)
            used += needed
    return [line for i, line in enumerate(lines) if i in kept]
