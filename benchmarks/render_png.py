"""Where the placeholder PNG's render time goes (``emulator.images.render_png``), pinned to one CPU.

For each size of ``bench.py``'s render section: ``render_png``'s median wall and CPU time over
distinct seeds and task ids, with the size's frame cached (as in a running server after the
size's first render: nothing else is cached but fonts and glyphs), and the first render of a
size (the frame cache cleared before each). Then, as median CPU times, what a render does:
laying out and drawing the label (``labels.label_panel``), painting it on a copy of the frame's
rows it covers (*band*: the crop, the paint and the scanlines' bytes), zlib deflating those
rows and their adler32; and what a first render adds, drawing the frame and deflating all its
rows (``images._Frame.draw``). For comparison, Pillow's PNG encoder on the whole drawn canvas
(the renderer before the frame cache), the band's share of the rows, and both files' sizes.
Last, Pillow's flat RGB 1440x720 encode (``bench.py``'s yardstick), the transparent (RGBA)
variant, and issue 17's render targets.

Usage: ``python benchmarks/render_png.py [--repeats 15] [--cpu N]``. Exit code 0.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import PIL
from PIL import Image
from zlib_ng import zlib_ng

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's emulator

from processes import pin

from emulator import images, labels
from emulator.images import PNG_OPTIONS, Placeholder, render_png

SIZES = [
    (1024, 1024, "cogview-4"),
    (1440, 720, "cogview-4"),
    (720, 1440, "cogview-4"),
    (2048, 2048, "flux-2"),
    (3136, 1344, "flux-2"),
]
TARGETS = {"1024x1024": 1.5, "2048x2048": 5.0, "3136x1344": 5.0}  # ms, issue 17
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


def label(model: str, i: int) -> labels.Label:
    return labels.Label(model=model, prompt=PROMPT, task_id=f"n17{i:016x}_bench")


def first_render(w: int, h: int, model: str, i: int) -> bytes:
    images._FRAMES.clear()
    return placeholder(w, h, model, i)


def pillow_png(w: int, h: int, model: str) -> tuple[Image.Image, bytes]:
    canvas = labels.draw_placeholder(w, h, label(model, 0))
    canvas.putpalette(labels.palette(0))
    return canvas, save(canvas)


def save(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **PNG_OPTIONS)
    return buf.getvalue()


def measure(w: int, h: int, model: str, n: int) -> list[str]:
    """The row of one size: render and first render (wall, CPU), the parts' CPU, the sizes."""
    wall, cpu = timed(lambda i: placeholder(w, h, model, i), n)
    first_wall, _ = timed(lambda i: first_render(w, h, model, i), max(3, n // 3))
    frame = images._FRAMES.get(w, h)
    panel = labels.label_panel(w, h, label(model, 0))
    assert panel is not None
    _, _, rows = frame.band(panel)
    parts = images._split(rows, frame.rows * frame.line)
    canvas, old = pillow_png(w, h, model)
    figures = [
        wall,
        cpu,
        first_wall,
        cpu_ms(lambda i: labels.label_panel(w, h, label(model, i)), n),
        cpu_ms(lambda _: frame.band(panel), n),
        cpu_ms(lambda _: images._deflate(parts), n),
        cpu_ms(lambda _: zlib_ng.adler32(rows), n),
        cpu_ms(lambda _: images._Frame.draw(w, h), max(3, n // 3)),
        cpu_ms(lambda _: save(canvas), n),
    ]
    share = len(rows) / (frame.line * h)
    return [f"{c:.2f}" for c in figures] + [
        f"{share:.0%}",
        f"{len(placeholder(w, h, model, 0)):,}",
        f"{len(old):,}",
    ]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="renders per case (default 15)")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one)")
    args = parser.parse_args()
    n = args.repeats

    print(f"render_png, Pillow {PIL.__version__}, zlib-ng {zlib_ng.ZLIBNG_RUNTIME_VERSION}; "
          f"{pin(args.cpu)}; median of {n}")  # fmt: skip
    placeholder(1440, 720, "cogview-4", -1)  # fonts load here, not timed
    head = ("size", "render", "CPU", "first", "label", "band", "deflate", "adler32", "frame",
            "Pillow", "rows", "bytes", "Pillow's")  # fmt: skip
    print(f"\n{head[0]:10s}" + "".join(f"{c:>9s}" for c in head[1:]))
    renders = {}
    for w, h, model in SIZES:
        row = measure(w, h, model, n)
        renders[f"{w}x{h}"] = float(row[0])
        print(f"{w}x{h:<5d}" + "".join(f"{c:>9s}" for c in row))

    flat_wall, _ = timed(
        lambda _: Image.new("RGB", (1440, 720), (96, 140, 200)).save(io.BytesIO(), "PNG"), n
    )
    rgba_wall, rgba_cpu = timed(
        lambda i: placeholder(1024, 1024, "cogview-4", i, transparent=True), n
    )
    ratio = renders["1440x720"] / flat_wall
    verdicts = [f"{size} {renders[size]:.2f} <= {limit} ms: {verdict(renders[size] <= limit)}"
                for size, limit in TARGETS.items()]  # fmt: skip
    print(
        f"\nms: render = render_png, its wall then CPU time (the size's frame cached); first = "
        f"a size's first render (wall). Then CPU: label = labels.label_panel; band = the "
        f"frame's rows it covers copied and painted; deflate, adler32 = zlib on those rows; "
        f"frame = drawing and deflating the frame (a first render's extra); Pillow = Pillow's "
        f"encode of the whole canvas. rows = the band's share of the scanlines; bytes = the "
        f"PNG's size, Pillow's = Pillow's PNG of the same canvas."
        f"\nPillow flat RGB 1440x720 (default level): {flat_wall:.2f} ms; render_png 1440x720 "
        f"{renders['1440x720']:.2f} ms = {ratio:.3f}x"
        f"\ntransparent (RGBA, Pillow's encoder) 1024x1024: {rgba_wall:.2f} ms "
        f"(CPU {rgba_cpu:.2f} ms)"
        f"\ntargets (issue 17, wall): "
        + "; ".join(verdicts)
        + f"; 1440x720 {ratio:.3f}x <= 0.1x flat RGB: {verdict(ratio <= 0.1)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
