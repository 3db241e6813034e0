"""Where the placeholder PNG's render time goes (``emulator.images.render_png``), pinned to one CPU.

For each size of ``bench.py``'s render section: ``render_png``'s median wall and CPU time over
distinct seeds and task ids (nothing cached but fonts and glyphs, as in a running server), and
its parts, as median CPU times: drawing the palette canvas (``labels.draw_placeholder``),
Pillow's encode of it (``images.PNG_OPTIONS``) and zlib alone compressing the same rows in one
call (what any PNG of that canvas costs at least: Pillow feeds zlib a row at a time and adds
nothing measurable). Then the alternatives the renderer does not take: the canvas saved at 4
bits per pixel (Pillow runs its adaptive row filters on packed rows, not on 8-bit palette rows),
and the frame (border and cross) drawn against copied from a per-size cache. Last, Pillow's
flat RGB 1440x720 encode (``bench.py``'s yardstick) and the transparent (RGBA) variant.

Usage: ``python benchmarks/render_png.py [--repeats 15] [--cpu N]``. Exit code 0.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import PIL
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's emulator

from processes import pin

from emulator import labels
from emulator.images import PNG_OPTIONS, Placeholder, render_png

SIZES = [
    (1024, 1024, "cogview-4"),
    (1440, 720, "cogview-4"),
    (720, 1440, "cogview-4"),
    (2048, 2048, "flux-2"),
    (3136, 1344, "flux-2"),
]
PROMPT = "A watercolor fox in a misty forest at dawn, soft light, highly detailed"
MAX_PIXELS = 4096 * 4096


def timed(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of fn(0), fn(1)... (everything runs on this thread)."""
    wall, cpu = [], []
    for i in range(repeats):
        started, started_cpu = time.perf_counter(), time.thread_time()
        fn(i)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def cpu_ms(fn: Callable[[int], object], repeats: int) -> float:
    return timed(fn, repeats)[1]


def placeholder(w: int, h: int, model: str, i: int, *, transparent: bool = False) -> bytes:
    p = Placeholder(w, h, 1000 + i, model, PROMPT, f"n17{i:016x}_bench")
    return render_png(p, max_pixels=MAX_PIXELS, transparent=transparent)


def canvas(w: int, h: int, model: str, i: int) -> Image.Image:
    label = labels.Label(model=model, prompt=PROMPT, task_id=f"n17{i:016x}_bench")
    return labels.draw_placeholder(w, h, label)


def png(image: Image.Image, **options: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **{**PNG_OPTIONS, **options})
    return buf.getvalue()


def zlib_alone(rows: bytes) -> bytes:
    z = zlib.compressobj(PNG_OPTIONS["compress_level"], zlib.DEFLATED, 15, 9,
                         PNG_OPTIONS["compress_type"])  # fmt: skip
    return z.compress(rows) + z.flush()


def frame(w: int, h: int) -> Image.Image:
    """The part of a placeholder that only its size decides: background, cross and border."""
    image = Image.new("L", (w, h), labels.BG)
    draw = ImageDraw.Draw(image)
    stroke = labels.stroke_width(w, h)
    draw.line((0, 0, w - 1, h - 1), fill=labels.LINE, width=stroke)
    draw.line((w - 1, 0, 0, h - 1), fill=labels.LINE, width=stroke)
    draw.rectangle((0, 0, w - 1, h - 1), outline=labels.LINE, width=stroke)
    return image


def measure(w: int, h: int, model: str, n: int) -> tuple[float, ...]:
    """render_png's wall and CPU ms, then the CPU ms of its parts and of the alternatives."""
    wall, cpu = timed(lambda i: placeholder(w, h, model, i), n)
    draw = cpu_ms(lambda i: canvas(w, h, model, i), n)
    image = canvas(w, h, model, 0)
    image.putpalette(labels.palette(0))
    encode = cpu_ms(lambda _: png(image), n)
    raw = image.tobytes()
    rows = b"".join(b"\0" + raw[y * w : (y + 1) * w] for y in range(h))
    alone = cpu_ms(lambda _: zlib_alone(rows), n)
    packed = cpu_ms(lambda _: png(image, bits=4), n)
    drawn = cpu_ms(lambda _: frame(w, h), n)
    cached = frame(w, h)
    copied = cpu_ms(lambda _: cached.copy(), n)
    return wall, cpu, draw, encode, alone, packed, drawn, copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="renders per case (default 15)")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one)")
    args = parser.parse_args()
    n = args.repeats

    print(f"render_png, Pillow {PIL.__version__}, zlib {zlib.ZLIB_RUNTIME_VERSION}; "
          f"{pin(args.cpu)}; median of {n}")  # fmt: skip
    placeholder(1440, 720, "cogview-4", -1)  # fonts load here, not timed
    head = ("size", "render", "CPU", "draw", "encode", "zlib", "4-bit", "frame", "copy", "bytes")
    print(f"\n{head[0]:10s}" + "".join(f"{c:>9s}" for c in head[1:]))
    for w, h, model in SIZES:
        print(f"{w}x{h:<5d}" + "".join(f"{c:9.2f}" for c in measure(w, h, model, n))
              + f"{len(placeholder(w, h, model, 0)):>9,}")  # fmt: skip

    flat_wall, _ = timed(
        lambda _: Image.new("RGB", (1440, 720), (96, 140, 200)).save(io.BytesIO(), "PNG"), n
    )
    render_wall, _ = timed(lambda i: placeholder(1440, 720, "cogview-4", i), n)
    rgba_wall, rgba_cpu = timed(
        lambda i: placeholder(1024, 1024, "cogview-4", i, transparent=True), n
    )
    print(
        f"\nms: render wall, then CPU. draw = labels.draw_placeholder; encode = its save with "
        f"images.PNG_OPTIONS; zlib = zlib alone on the same rows; 4-bit = the save with bits=4; "
        f"frame = drawing background, cross and border; copy = copying them from a cache."
        f"\nPillow flat RGB 1440x720 (default level): {flat_wall:.2f} ms; render_png 1440x720 "
        f"{render_wall:.2f} ms = {render_wall / flat_wall:.3f}x"
        f"\ntransparent (RGBA) 1024x1024: {rgba_wall:.2f} ms (CPU {rgba_cpu:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
