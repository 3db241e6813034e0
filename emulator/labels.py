"""The drawn part of every placeholder file: seeded colours, the text label and its glyph and line
caches.

Shared by the PNG renderer (``images.py``) and the MP4 renderer (``video.py``) so that an image
and a video of the same task look alike. Drawing happens on an 8-bit canvas whose pixel values
are palette indices (``BG``, ``LINE``, ``PANEL``, ``TEXT0``..): the PNG encoder then sees one
byte per pixel, and the video renderer attaches the same palette to get RGB once per video.
The frame (``draw_frame``: background, cross, border) depends on the size alone and the label
(``label_panel``) is laid out and drawn apart, so that the PNG renderer can keep a size's frame.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from PIL import Image, ImageDraw, ImageFont, features

__all__ = [
    "BG",
    "COVERAGE_LUT",
    "LINE",
    "PALETTE_ENTRIES",
    "PANEL",
    "RGB",
    "TEXT",
    "TEXT0",
    "Font",
    "Label",
    "Panel",
    "clean",
    "colours",
    "draw_frame",
    "draw_placeholder",
    "draw_text",
    "font_size",
    "label_panel",
    "line_height",
    "load_font",
    "luminance",
    "mix",
    "palette",
    "stroke_width",
    "text_width",
]

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
FontLoader = Callable[[int], Font]

# Palette index layout. The canvas is drawn in mode "L" with these values, then turned into
# a "P" image by attaching the palette (no pixel conversion needed).
BG, LINE, PANEL, TEXT0 = 0, 1, 2, 3  # TEXT0..TEXT0+3: anti-aliasing ramp, last = text
TEXT = TEXT0 + 3  # the text colour itself (full coverage)
_RAMP = (0.3, 0.55, 0.8, 1.0)  # text coverage represented by each ramp entry
# More than 16 palette entries keeps Pillow's own PNG encoder (a drawing saved by Pillow) at
# bit depth 8: it hands 8-bit palette rows to zlib unfiltered but runs its adaptive row filters
# on packed 1/2/4-bit rows, which costs more than the halved zlib input saves. The placeholder
# PNG, which images.py frames itself, stores the 7 entries used at 4 bits (benchmarks/README.md).
PALETTE_ENTRIES = 17
# Maps anti-aliased text coverage (0..255) to the panel -> text palette ramp.
COVERAGE_LUT = [PANEL + sum(v >= t for t in (40, 100, 170, 230)) for v in range(256)]
_OPAQUE_LUT = [0 if index == PANEL else 255 for index in COVERAGE_LUT]
_PROMPT_CHARS = 60
_ELLIPSIS = "\u2026"
_LOW_CONTRAST_LUMINANCE = 0.179  # luminance where black and white text contrast equally
_DARK_TEXT: RGB = (20, 22, 26)
_LIGHT_TEXT: RGB = (248, 248, 246)


@dataclass(frozen=True, slots=True)
class Label:
    """The text of a placeholder's label panel (arbitrary user text; sanitised when drawn)."""

    model: str
    prompt: str
    task_id: str
    detail: str = ""  # an extra line such as "image 2/4"; empty for none


def draw_placeholder(
    width: int,
    height: int,
    label: Label,
    *,
    bottom: int = 0,
    load: FontLoader | None = None,
) -> Image.Image:
    """The "L" canvas of palette indices: border, diagonal cross and the centred label.

    The label is laid out in the top ``height - bottom`` rows (the video keeps its bottom band
    for the progress bar). ``load`` picks the font for a pixel size (default ``load_font``).
    The caller has validated the size.
    """
    canvas = draw_frame(width, height)
    panel = label_panel(width, height, label, bottom=bottom, load=load)
    if panel is not None:
        panel.paint(canvas)
    return canvas


def draw_frame(width: int, height: int) -> Image.Image:
    """The part of a placeholder that only its size decides: background, cross and border."""
    canvas = Image.new("L", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    stroke = stroke_width(width, height)
    draw.line((0, 0, width - 1, height - 1), fill=LINE, width=stroke)
    draw.line((width - 1, 0, 0, height - 1), fill=LINE, width=stroke)
    draw.rectangle((0, 0, width - 1, height - 1), outline=LINE, width=stroke)
    return canvas


def stroke_width(width: int, height: int) -> int:
    """Width of the border and cross lines: 1 px up to 511 px, growing with the short side."""
    return max(1, min(width, height) // 256)


def font_size(width: int, height: int) -> int:
    """Pixel size of the label's body text for a canvas of this size."""
    return max(12, min(48, height // 20, width // 24))


# --------------------------------------------------------------------------- colours


def colours(seed: int) -> tuple[RGB, RGB, RGB, RGB]:
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
    if luminance(bg) > _LOW_CONTRAST_LUMINANCE:
        panel, far = mix(bg, (255, 255, 255), 0.5), _DARK_TEXT
    else:
        panel, far = mix(bg, (0, 0, 0), 0.4), _LIGHT_TEXT
    text = _DARK_TEXT if luminance(panel) > _LOW_CONTRAST_LUMINANCE else _LIGHT_TEXT
    line = mix(bg, far, 0.35)
    return bg, line, panel, text


def palette(seed: int) -> list[int]:
    """The flat RGB palette (``PALETTE_ENTRIES`` entries) for a canvas of ``draw_placeholder``."""
    bg, line, panel, text = colours(seed)
    out: list[int] = []
    for colour in (bg, line, panel, *(mix(panel, text, t) for t in _RAMP)):
        out.extend(colour)
    out.extend([0, 0, 0] * (PALETTE_ENTRIES - len(out) // 3))
    return out


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """The colour a fraction ``t`` of the way from ``a`` to ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def luminance(c: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(v: int) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])


# --------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=128)
def load_font(size: int) -> Font:
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
    ink: Image.Image | None  # the mask in palette indices (COVERAGE_LUT): PANEL..TEXT
    opaque: Image.Image | None  # 255 where ink is not PANEL, else 0: what a paste changes


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
        return _Glyph(None, 0, 0, advance, None, None)
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).text((-x0, -y0), ch, fill=255, font=font)
    return _Glyph(mask, x0, y0, advance, mask.point(COVERAGE_LUT), mask.point(_OPAQUE_LUT))


@functools.lru_cache(maxsize=256)
def _has_glyph(font: Font, ch: str) -> bool:
    """Whether `font` draws `ch` as something other than its missing-glyph box."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ord(ch) < 256
    a, b = _glyph(font, ch), _glyph(font, "\uffff")  # U+FFFF never has a glyph
    if a.mask is None or b.mask is None:
        return a.mask is not b.mask
    return (a.dx, a.dy, a.mask.tobytes()) != (b.dx, b.dy, b.mask.tobytes())


def text_width(font: Font, text: str) -> float:
    """Advance width of `text` drawn with ``draw_text`` (sum of the glyph advances)."""
    return sum(_glyph(font, ch).advance for ch in text)


def draw_text(mask: Image.Image, x: float, y: int, text: str, font: Font) -> None:
    """Draw `text` at full coverage (255) onto the "L" image `mask`, pen at (x, y)."""
    for ch in text:
        glyph = _glyph(font, ch)
        if glyph.mask is not None:
            mask.paste(255, (round(x) + glyph.dx, y + glyph.dy), glyph.mask)
        x += glyph.advance


def _draw_ink(panel: Image.Image, x: float, y: int, text: str, font: Font) -> None:
    """Draw `text` in palette indices onto `panel` (filled with PANEL), pen at (x, y).

    Each glyph's pixels are set to its own ramp index where it has ink, so no coverage mask
    has to be built and mapped for the whole panel; where two glyphs' ink overlaps, the later
    one wins (with coverage, the overlap would be a little darker).
    """
    for ch in text:
        glyph = _glyph(font, ch)
        if glyph.ink is not None:
            panel.paste(glyph.ink, (round(x) + glyph.dx, y + glyph.dy), glyph.opaque)
        x += glyph.advance


class _Inked(NamedTuple):
    """A whole line drawn by :func:`_draw_ink` with its pen at (0, 0), and the offset of its
    top left corner from the pen."""

    ink: Image.Image  # PANEL and the text ramp
    opaque: Image.Image  # 255 where a glyph has ink, else 0
    dx: int
    dy: int


@functools.lru_cache(maxsize=64)
def _inked(font: Font, text: str) -> _Inked | None:
    """`text` drawn once (None: nothing to draw), for the lines that every placeholder of a
    model and size repeats: pasted whole, one paste instead of one a glyph. Its mask is where
    the drawing is not PANEL: where some glyph left ink, as each glyph's own mask says."""
    boxes = []
    x = 0.0
    for ch in text:
        glyph = _glyph(font, ch)
        if glyph.ink is not None:
            left, top = round(x) + glyph.dx, glyph.dy
            boxes.append((left, top, left + glyph.ink.width, top + glyph.ink.height))
        x += glyph.advance
    if not boxes:
        return None
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    size = (max(b[2] for b in boxes) - left, max(b[3] for b in boxes) - top)
    ink = Image.new("L", size, PANEL)
    _draw_ink(ink, -left, -top, text, font)
    return _Inked(ink, ink.point(_INK_LUT), left, top)


#: 255 for every palette index but PANEL: the mask of what a drawing in indices has inked
_INK_LUT = [0 if index == PANEL else 255 for index in range(256)]


def clean(text: str, limit: int) -> str:
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
        if text_width(font, text[:mid] + suffix) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fit(text: str, font: Font, max_width: float) -> str | None:
    """`text`, or its longest prefix plus an ellipsis, that fits; None if nothing fits."""
    if not text:
        return None
    if text_width(font, text) <= max_width:
        return text
    ellipsis = _ELLIPSIS if _has_glyph(font, _ELLIPSIS) else "..."
    n = _longest_prefix(text, font, max_width, ellipsis)
    return text[:n].rstrip() + ellipsis if n else None


def _wrap(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines; the last one is ellipsised if cut."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines - 1 and text_width(font, rest) > max_width:
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

    @property
    def kept(self) -> bool:
        """Whether every placeholder of a model and size has this line (the title, the model,
        the size, the image count), so that it is drawn once and kept (:func:`_inked`)."""
        return self.priority < 4


def line_height(font: Font) -> int:
    """Height of one line of `font` (ascent + descent)."""
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return int(font.getbbox("Ag")[3])


class Panel(NamedTuple):
    """The label's panel, drawn: its pixels (``PANEL`` and the text ramp) and where its top
    left corner goes on the placeholder. ``paint`` adds a one-pixel ``LINE`` outline around it."""

    image: Image.Image
    left: int
    top: int

    @property
    def rows(self) -> range:
        """The placeholder's rows that ``paint`` changes: the panel's and its outline's."""
        return range(self.top - 1, self.top + self.image.height + 1)

    def paint(self, canvas: Image.Image, origin: tuple[int, int] = (0, 0)) -> None:
        """Paste the panel and draw its outline on `canvas`, whose pixel `origin` is the
        placeholder's top left corner (a canvas of some rows only, or with extra columns)."""
        left, top = self.left + origin[0], self.top + origin[1]
        right, bottom = left + self.image.width, top + self.image.height
        canvas.paste(self.image, (left, top))
        ImageDraw.Draw(canvas).rectangle((left - 1, top - 1, right, bottom), outline=LINE, width=1)


def label_panel(
    width: int,
    height: int,
    label: Label,
    *,
    bottom: int = 0,
    load: FontLoader | None = None,
) -> Panel | None:
    """The label of a placeholder of this size, centred in its top ``height - bottom`` rows;
    lines that do not fit are shortened or skipped. None if nothing fits."""
    w, h = width, height - bottom
    load = load or load_font
    size = font_size(width, height)
    font = load(size)
    pad = max(2, size // 2)
    gap = max(2, size // 4)
    margin = 2 * stroke_width(width, height) + 2
    max_width = w - 2 * (margin + pad)
    max_height = h - 2 * (margin + pad)
    if max_width < size or max_height < line_height(font):
        return None

    title_font = load(round(size * 1.5))
    if text_width(title_font, "PLACEHOLDER") > max_width:
        title_font = font
    times = "\u00d7" if _has_glyph(font, "\u00d7") else "x"
    candidates: list[_Line] = [
        _Line("PLACEHOLDER", title_font, 0),
        _Line(clean(label.model, 80), font, 2),
        _Line(f"{width}{times}{height}", font, 1),
    ]
    if label.detail:
        candidates.append(_Line(label.detail, font, 3))
    prompt = clean(label.prompt, _PROMPT_CHARS)
    candidates.extend(
        _Line(text, font, 5 + i) for i, text in enumerate(_wrap(prompt, font, max_width, 2))
    )
    candidates.append(_Line(clean(label.task_id, 80), font, 4))

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
        return None

    widths = [text_width(line.font, line.text) for line in lines]
    heights = [line_height(line.font) for line in lines]
    panel_w = min(w - 2 * margin, int(max(widths)) + 2 * pad)
    panel_h = min(h - 2 * margin, sum(heights) + gap * (len(lines) - 1) + 2 * pad)
    panel = Image.new("L", (panel_w, panel_h), PANEL)
    y = pad
    for line, line_w, line_h in zip(lines, widths, heights, strict=True):
        x = round((panel_w - line_w) / 2)  # a whole pixel: a kept line looks the same anywhere
        if not line.kept:
            _draw_ink(panel, x, y, line.text, line.font)
        elif (inked := _inked(line.font, line.text)) is not None:
            panel.paste(inked.ink, (x + inked.dx, y + inked.dy), inked.opaque)
        y += line_h + gap
    return Panel(panel, (w - panel_w) // 2, (h - panel_h) // 2)


def _fit_vertically(lines: Sequence[_Line], max_height: int, gap: int) -> list[_Line]:
    """Keep the highest-priority lines (in display order) whose stacked height fits."""
    kept: set[int] = set()
    used = -gap
    for i in sorted(range(len(lines)), key=lambda i: lines[i].priority):
        needed = line_height(lines[i].font) + gap
        if used + needed <= max_height:
            kept.add(i)
            used += needed
    return [line for i, line in enumerate(lines) if i in kept]
