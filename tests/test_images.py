"""Placeholder PNG rendering and the rendered-image cache."""

from __future__ import annotations

import colorsys
import concurrent.futures
import hashlib
import io
import os
import struct
import subprocess
import sys
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFont

from emulator import images, labels
from emulator.catalogue import Catalogue
from emulator.images import Placeholder, render_png
from emulator.media import FileCache, MediaFile, etag_of

BIG = 4096 * 4096  # the catalogue's largest size
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make(width: int = 320, height: int = 200, **fields: object) -> Placeholder:
    values: dict[str, object] = {
        "seed": 42,
        "model": "cogview-4",
        "prompt": "a red fox in the snow",
        "task_id": "n48a1b2c3d4e5f6a7b8_cv4",
    }
    values.update(fields)
    return Placeholder(width=width, height=height, **values)  # type: ignore[arg-type]


def decode(body: bytes) -> Image.Image:
    assert body.startswith(PNG_SIGNATURE)
    im = Image.open(io.BytesIO(body))
    assert im.format == "PNG"
    im.load()
    return im


def dominant_rgb(body: bytes) -> tuple[int, int, int]:
    colours = decode(body).convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None
    return max(colours)[1]


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = sorted((images._luminance(a), images._luminance(b)))
    return (lb + 0.05) / (la + 0.05)


# -- dimensions and format ------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [(1024, 1024), (1440, 720), (720, 1440), (512, 288), (100, 100), (333, 77)],
)
def test_png_has_exact_dimensions(width: int, height: int) -> None:
    body = render_png(make(width, height), max_pixels=BIG)
    im = decode(body)
    assert im.size == (width, height)
    assert im.mode == "P"
    # IHDR bit depth 4, colour type 3: the drawing's 7 colours, two pixels a byte for zlib
    assert body[24:26] == b"\x04\x03"


@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (2, 2), (5, 300), (300, 5), (1, 500), (13, 13), (40, 30)]
)
def test_tiny_and_thin_sizes_render(width: int, height: int) -> None:
    im = decode(render_png(make(width, height, count=3, index=2), max_pixels=BIG))
    assert im.size == (width, height)


def test_size_exactly_at_the_limit_is_allowed() -> None:
    assert decode(render_png(make(300, 200), max_pixels=300 * 200)).size == (300, 200)


# -- the same picture as Pillow's encoder of the drawn canvas ---------------------------


def pillow_png(p: Placeholder) -> bytes:
    """The placeholder drawn whole and saved by Pillow: what ``render_png`` must look like."""
    detail = f"image {p.index + 1}/{p.count}" if p.count > 1 else ""
    label = labels.Label(model=p.model, prompt=p.prompt, task_id=p.task_id, detail=detail)
    canvas = labels.draw_placeholder(p.width, p.height, label)
    canvas.putpalette(labels.palette(p.seed))
    buf = io.BytesIO()
    canvas.save(buf, "PNG", **images.PNG_OPTIONS)
    return buf.getvalue()


def chunks(body: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks as (type, data), each CRC checked."""
    out, at = [], len(PNG_SIGNATURE)
    while at < len(body):
        (length,) = struct.unpack(">I", body[at : at + 4])
        kind, data = body[at + 4 : at + 8], body[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", body[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        out.append((kind, data))
        at += 12 + length
    assert at == len(body)
    return out


def assert_same_picture(p: Placeholder) -> None:
    """render_png's PNG decodes to the pixels and colours of Pillow's (8-bit) PNG of the same
    canvas, and its zlib stream (adler32 included, which zlib checks) holds exactly those
    scanlines, 4 bits a pixel, each row unfiltered and padded to a byte with a 0 nibble."""
    body = render_png(p, max_pixels=BIG)
    Image.open(io.BytesIO(body)).verify()
    got, want = decode(body), decode(pillow_png(p))
    assert (got.mode, got.size) == (want.mode, want.size) == ("P", (p.width, p.height))
    used = 3 * (labels.TEXT + 1)  # the file's palette: the 7 colours a drawing uses
    assert got.getpalette() == want.getpalette()[:used] == labels.palette(p.seed)[:used]
    assert got.tobytes() == want.tobytes()
    assert max(want.tobytes()) <= labels.TEXT
    kinds = [kind for kind, _ in chunks(body)]
    assert kinds == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    idat = b"".join(data for kind, data in chunks(body) if kind == b"IDAT")
    assert zlib.decompress(idat) == packed_rows(want.tobytes(), p.width, p.height)


def nibbles(pixels: bytes, w: int, h: int) -> bytes:
    """Rows of indices below 16, two pixels a byte, each row padded with a 0 nibble."""
    out = bytearray()
    for y in range(h):
        row = pixels[y * w : (y + 1) * w] + b"\0"
        out += bytes(row[i] << 4 | row[i + 1] for i in range(0, w, 2))
    return bytes(out)


def packed_rows(pixels: bytes, w: int, h: int) -> bytes:
    """PNG scanlines of 4-bit indices: each a filter-type byte 0, then two pixels a byte."""
    line = (w + 1) // 2
    packed = nibbles(pixels, w, h)
    return b"".join(b"\0" + packed[y * line : (y + 1) * line] for y in range(h))


SIDES = st.integers(1, 700)


@settings(max_examples=150, deadline=None)
@given(
    width=SIDES,
    height=SIDES,
    seed=st.integers(0, 2**64 - 1),
    prompt=st.text(max_size=120),
    model=st.sampled_from(["cogview-4", "flux-2", "x" * 90, ""]),
    task_id=st.text(max_size=30),
    count=st.integers(1, 4),
    data=st.data(),
)
def test_render_is_the_picture_pillow_encodes(
    width: int,
    height: int,
    seed: int,
    prompt: str,
    model: str,
    task_id: str,
    count: int,
    data: st.DataObject,
) -> None:
    index = data.draw(st.integers(0, count - 1))
    assert_same_picture(Placeholder(width, height, seed, model, prompt, task_id, index, count))


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(1, 1, id="1x1"),
        pytest.param(1, 3000, id="one-column"),
        pytest.param(3000, 1, id="one-row"),
        pytest.param(40, 30, id="no-label"),  # too small for any line: every row from the cache
        pytest.param(200, 60, id="label-in-every-segment"),  # one segment, redrawn whole
        pytest.param(32767, 5, id="a-row-per-segment"),  # a scanline fills a segment
        pytest.param(1023, 1021, id="odd"),
    ],
)
def test_edge_sizes_are_the_picture_pillow_encodes(width: int, height: int) -> None:
    assert_same_picture(make(width, height, count=2, index=1))


def catalogue_sizes() -> list[tuple[int, int]]:
    catalogue = Catalogue.load()
    return sorted({size for m in catalogue.models.values() for size in m.allowed_pixel_sizes()})


@pytest.mark.parametrize(("width", "height"), catalogue_sizes())
def test_catalogue_sizes_are_the_picture_pillow_encodes(width: int, height: int) -> None:
    assert_same_picture(make(width, height, seed=width * height, prompt="fox " * 30))


def test_bytes_are_the_same_whether_the_frame_was_cached_or_not() -> None:
    p = make(640, 480, count=3, index=2)
    images._FRAMES.clear()
    missed = render_png(p, max_pixels=BIG)
    assert render_png(p, max_pixels=BIG) == missed  # from the cached frame
    images._FRAMES.clear()
    assert render_png(p, max_pixels=BIG) == missed


def test_render_threads_sharing_the_frame_cache_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a budget of about two frames: the threads draw, keep and evict frames under each other
    monkeypatch.setattr(images, "_FRAMES", images._Frames(max_bytes=2 * 321 * 240 + 10_000))
    jobs = [make(320 + i % 3, 240, seed=i, task_id=f"t{i}") for i in range(60)]
    serial = [render_png(p, max_pixels=BIG) for p in jobs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda p: render_png(p, max_pixels=BIG), jobs))
    assert threaded == serial
    assert images._FRAMES.size_bytes <= images._FRAMES.max_bytes


def test_frame_segments_are_independent_and_checksummed() -> None:
    frame = images._FRAMES.get(1440, 720)
    line = frame.line
    assert line == 1 + 1440 // 2
    # the frame's two extra columns of 0 pack into each row's filter-type byte
    assert frame.scanlines.crop((0, 0, 2, 720)).getextrema() == (0, 0)
    scanlines = nibbles(frame.scanlines.tobytes(), 1442, 720)
    step = frame.rows * line
    assert step <= images._SEGMENT_BYTES
    for i, segment in enumerate(frame.segments):
        rows = scanlines[i * step : (i + 1) * step]
        # inflates alone, without the segments before it: it refers to none of their bytes
        assert zlib.decompressobj(-15).decompress(segment) == rows
        assert frame.before[i + 1] == zlib.adler32(scanlines[: (i + 1) * step])
        assert frame.after[i] == zlib.adler32(scanlines[i * step :])
    assert frame.before[0] == frame.after[-1] == 1


def test_deflated_segments_refer_to_nothing_before_them() -> None:
    # runs across a boundary: a match could reach back into the part before, were it not for
    # the full flush (a frame's rows never run across: each ends with the border, each begins
    # with the filter-type byte 0)
    parts = [memoryview(b"a" * 5000), memoryview(b"a" * 5000 + b"b"), memoryview(b"b" * 300)]
    segments = images._deflate(parts)
    for part, segment in zip(parts, segments, strict=True):
        assert zlib.decompressobj(-15).decompress(segment) == part
    stream = images._ZLIB_HEADER + b"".join(segments[::-1]) + images._LAST_BLOCK
    adler = zlib.adler32(b"".join(parts[::-1]))
    assert zlib.decompress(stream + adler.to_bytes(4, "big")) == b"".join(parts[::-1])


@settings(max_examples=300, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300), repeat=st.integers(1, 700))
def test_adler32_combine_is_zlibs(a: bytes, b: bytes, repeat: int) -> None:
    b *= repeat  # lengths past adler32's modulus, 65521
    combined = images._adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
    assert combined == zlib.adler32(a + b)


def test_frame_cache_keeps_the_last_sizes_within_its_budget() -> None:
    a, b, c = (300, 200), (310, 200), (320, 200)  # growing frames
    nbytes = {size: images._Frame.draw(*size).nbytes for size in (a, b, c)}
    frames = images._Frames(max_bytes=nbytes[b] + nbytes[c])
    for size in (a, b, c):
        frames.get(*size)
    assert list(frames._frames) == [b, c]  # a went to make room for c
    assert frames.get(*b) is frames.get(*b)
    frames.get(*a)  # c is now the least recently used
    assert list(frames._frames) == [b, a]
    assert frames.size_bytes == nbytes[a] + nbytes[b] <= frames.max_bytes
    small = images._Frames(max_bytes=nbytes[a] - 1)
    assert small.get(*a) is not small.get(*a)  # too big to keep: drawn for each render
    assert small.size_bytes == 0
    frames.clear()
    assert (list(frames._frames), frames.size_bytes) == ([], 0)


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (0, 0), (-5, 10), (10, -1)])
def test_non_positive_sizes_are_rejected(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=r"width and height must be >= 1"):
        render_png(make(width, height), max_pixels=BIG)


def test_oversize_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"301x200 .*exceeds.*60000"):
        render_png(make(301, 200), max_pixels=300 * 200)


def test_huge_size_is_rejected_before_any_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_allocation(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("Image.new called before the size check")

    monkeypatch.setattr(Image, "new", no_allocation)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="100000x100000"):
        render_png(make(100_000, 100_000), max_pixels=4_194_304)
    assert time.perf_counter() - start < 0.05


# -- determinism and content ----------------------------------------------------------


def test_same_placeholder_gives_identical_bytes() -> None:
    p = make(400, 300, prompt="déjà vu 🦊 \u202eabc", count=4, index=1)
    assert render_png(p, max_pixels=BIG) == render_png(p, max_pixels=BIG)
    assert render_png(p, max_pixels=BIG) == render_png(
        Placeholder(**{f: getattr(p, f) for f in Placeholder.__dataclass_fields__}),
        max_pixels=BIG,
    )


def test_output_is_identical_across_processes() -> None:
    code = (
        "import hashlib\n"
        "from emulator.images import Placeholder, render_png\n"
        "p = Placeholder(400, 300, 7, 'cogview-4', 'fox \\U0001f98a', 'n1_cv4', 1, 3)\n"
        "print(hashlib.sha256(render_png(p, max_pixels=10**7)).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    # The child draws with cold glyph caches; the second render here draws from warm ones.
    p = Placeholder(400, 300, 7, "cogview-4", "fox \U0001f98a", "n1_cv4", 1, 3)
    for _ in range(2):
        here = render_png(p, max_pixels=10**7)
        assert out.stdout.strip() == hashlib.sha256(here).hexdigest()


def test_different_seeds_give_different_background_colours() -> None:
    bodies = [render_png(make(256, 256, seed=seed), max_pixels=BIG) for seed in range(16)]
    assert len(set(bodies)) == 16
    assert len({dominant_rgb(body) for body in bodies}) == 16


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 2**31, 2**32 - 1])
def test_background_is_mid_saturation_and_mid_lightness(seed: int) -> None:
    r, g, b = dominant_rgb(render_png(make(256, 256, seed=seed), max_pixels=BIG))
    _, lightness, saturation = colorsys.rgb_to_hls(r / 255, g / 255, b / 255)
    assert 0.35 <= lightness <= 0.8
    assert 0.25 <= saturation <= 0.7


def test_text_colour_is_readable_on_its_panel_for_many_seeds() -> None:
    for seed in range(0, 4000, 7):
        bg, line, panel, text = images._colours(seed)
        assert contrast(text, panel) >= 4.5, seed
        assert bg != line  # the frame lines are visible


def test_label_text_is_drawn() -> None:
    base = make(640, 360, count=4, index=0)
    body = render_png(base, max_pixels=BIG)
    assert len(decode(body).getcolors() or []) >= 5  # background, lines, panel, text ramp
    for changed in (
        make(640, 360, count=4, index=1),
        make(640, 360, count=4, prompt="a blue fox"),
        make(640, 360, count=4, model="flux-1"),
        make(640, 360, count=4, task_id="other_cv4"),
    ):
        assert render_png(changed, max_pixels=BIG) != body


def test_label_text_keeps_its_anti_aliasing_ramp() -> None:
    im = decode(render_png(make(1024, 1024), max_pixels=BIG))
    # background, lines, panel and every step of the panel -> text ramp; nothing else
    assert {index for _, index in im.getcolors() or []} == set(range(labels.TEXT + 1))


@given(
    text=st.text(max_size=30),
    size=st.sampled_from([12, 21, 42, 63, 0]),  # 0: the bitmap font, without FreeType
    x=st.integers(0, 9),
)
@settings(max_examples=80, deadline=None)
def test_a_kept_line_is_the_line_drawn_glyph_by_glyph(text: str, size: int, x: int) -> None:
    """The title, model, size and image-count lines are drawn once and pasted whole: the
    pixels are those of drawing each glyph in turn, overlaps included."""
    font = labels.load_font(size) if size else ImageFont.load_default_imagefont()
    height = labels.line_height(font)
    box = (int(labels.text_width(font, text)) + 2 * height + 20, 3 * height)
    by_glyph, whole = Image.new("L", box, labels.PANEL), Image.new("L", box, labels.PANEL)
    pen = (x + height, height)
    labels._draw_ink(by_glyph, pen[0], pen[1], text, font)
    inked = labels._inked(font, text)
    if inked is not None:
        whole.paste(inked.ink, (pen[0] + inked.dx, pen[1] + inked.dy), inked.opaque)
    assert whole.tobytes() == by_glyph.tobytes()


def test_transparent_variant_is_the_picture_with_a_see_through_background() -> None:
    p = make(320, 200, count=2, index=1)
    opaque = decode(render_png(p, max_pixels=BIG)).convert("RGBA")
    body = render_png(p, max_pixels=BIG, transparent=True)
    assert body[24:26] == b"\x08\x06"  # IHDR: 8-bit RGBA
    clear = decode(body)
    assert (clear.mode, clear.size) == ("RGBA", (320, 200))
    background = bytes((*images._colours(p.seed)[0], 255))
    before, after = opaque.tobytes(), clear.tobytes()
    see_through = 0
    for i in range(0, len(before), 4):
        if before[i : i + 4] == background:
            assert after[i + 3] == 0
            see_through += 1
        else:
            assert after[i : i + 4] == before[i : i + 4]
    assert see_through > 320 * 200 // 2
    assert render_png(p, max_pixels=BIG, transparent=True) == body


def test_font_size_is_clamped_for_big_images() -> None:
    # 48 px text on a 4096-tall image must not grow: the label panel stays a small part.
    im = decode(render_png(make(2048, 4096), max_pixels=BIG))
    counts = {index: count for count, index in im.getcolors() or []}
    assert counts[images._PANEL] < 0.15 * 2048 * 4096


HOSTILE = [
    "\U0001f98a\U0001f525 \U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "\u200f\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd\u200f \u0645\u0631\u062d\u0628\u0627",
    "nul\x00byte\x00and\x07bell\x1b[31mansi",
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "x" * 10_000,
    "word " * 2_000,
    "e\u0301" * 3_000,
    "\ud800 lone surrogate \udfff",
    "\u202e\u202d\u2066\ufeff\u200b",
    "\n\t\r  \u2028\u2029",
    "",
    "\uffff\U0010ffff\ue000",
    "\u6f22\u5b57\u304b\u306a\u30ab\u30ca\ud55c\uad6d\uc5b4" * 20,
]


@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_prompts_render(prompt: str) -> None:
    p = make(480, 320, prompt=prompt, model=prompt[:30], task_id=prompt[:40], count=2)
    assert decode(render_png(p, max_pixels=BIG)).size == (480, 320)


def test_bitmap_fallback_font_handles_non_latin1(monkeypatch: pytest.MonkeyPatch) -> None:
    bitmap = ImageFont.load_default_imagefont()
    monkeypatch.setattr(images, "_load_font", lambda size: bitmap)
    for prompt in HOSTILE:
        p = make(480, 320, prompt=prompt, model="модель", task_id="🦊", count=2)
        assert decode(render_png(p, max_pixels=BIG)).size == (480, 320)


def test_prompt_excerpt_is_cleaned_and_truncated() -> None:
    assert images._clean("a\x00b\n\n c\u200fd\ud800", 60) == "a b cd\ufffd"
    assert images._clean("  \t ", 60) == ""
    long = images._clean("abcdefghij" * 1000, 60)
    assert len(long) == 60
    assert long.endswith("\u2026")
    assert images._clean("x" * 60, 60) == "x" * 60


# -- cache (media.FileCache: one byte budget for every kind of file) ------------------


def _file(p: Placeholder) -> MediaFile:
    body = render_png(p, max_pixels=BIG)
    return MediaFile(body, etag_of(body), "image/png")


def test_cache_returns_the_same_object_and_a_strong_etag() -> None:
    cache = FileCache()
    first = _file(make(64, 64))
    cache.put(("t1", 0), first)
    assert cache.get(("t1", 0)) is first
    digest = hashlib.blake2b(first.body, digest_size=16).hexdigest()
    assert first.etag == f'"{digest}"'
    assert len(cache) == 1
    assert cache.size_bytes == len(first.body)


def _three() -> list[tuple[tuple[str, int], MediaFile, int]]:
    out = []
    for i, task in enumerate(("a", "b", "c")):
        file = _file(make(96, 96, seed=i, task_id=task))
        out.append(((task, 0), file, len(file.body)))
    return out


def test_cache_evicts_least_recently_used_when_over_budget() -> None:
    (ka, a, sa), (kb, b, sb), (kc, c, sc) = _three()
    cache = FileCache(max_bytes=sa + sb + sc - 1)
    cache.put(ka, a)
    cache.put(kb, b)
    assert cache.get(ka) is a  # a is now most recently used
    cache.put(kc, c)  # over budget: b goes
    assert len(cache) == 2 and cache.get(kb) is None
    assert cache.size_bytes == sa + sc
    assert cache.get(ka) is a
    cache.put(kb, b)  # back, evicting c (now the least recently used)
    assert cache.get(kc) is None and cache.size_bytes == sa + sb


def test_cache_does_not_store_a_file_bigger_than_the_budget() -> None:
    (ka, a, sa), *_ = _three()
    cache = FileCache(max_bytes=sa - 1)
    cache.put(ka, a)
    assert len(cache) == 0 and cache.size_bytes == 0
    assert len(FileCache(max_bytes=0)) == 0
    with pytest.raises(ValueError):
        FileCache(max_bytes=-1)


def test_cache_clear() -> None:
    cache = FileCache()
    for index in range(3):
        cache.put(("t", index), _file(make(32, 32, index=index, count=3)))
    cache.clear()
    assert len(cache) == 0 and cache.size_bytes == 0
