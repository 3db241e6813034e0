"""The placeholder MP4 renderer: a real H.264 file that a browser plays, cheap enough to render
on the first download.

This is the only module of the emulator that imports PyAV for video, and only inside
``render_mp4``: importing this module does not import PyAV; the first render pays for it (about
60 ms). The picture is the placeholder image of ``labels.py`` (seeded background, border, cross,
the label with model, prompt and task id) above a bottom band where a progress bar grows and a
counter ("2.0 / 5 s") runs, so a person sees it play.

One render, CPU time on one core (wall-clock median in brackets, file size): 5 s of 1280x720
41 ms (50 ms, 62 kB; the target is 250 ms), with silent audio 50 ms (68 ms, 67 kB); 5 s of
854x480 20 ms; 10 s of 1920x1080 169 ms (245 ms, 189 kB); 15 s of 1080x1920 287 ms (401 ms,
296 kB). A new interpreter's first render of 5 s of 1280x720, ``import av`` included: 213 ms.

Choices, and the figures behind them (``benchmarks/render_video.py --sweep``: CPU time of one
render of 5 s of 1280x720 on one pinned core of a shared 2-core AMD EPYC VM, PyAV 18.1 with
x264 core 165; wall-clock medians ran 1.0-1.5x these while other jobs shared the machine):

- Nothing is drawn in RGB per frame and swscale is never called: the canvas holds palette
  indices (as for the PNG) and three 256-entry tables (BT.709, limited range) turn it into the
  Y, U and V planes, U and V averaged over 2x2 blocks (``Image.reduce``), once per video. Each
  frame then draws only the band, straight into its three planes: 0.06 ms a frame, where
  converting the band from RGB with swscale took 0.4 ms at 720p and 0.6 ms at 1080p.
- ``FPS = 5``: the encode is most of the time and grows with the frame count (4/5/6/8 fps:
  39/37/43/69 ms), the counter's tenths are exact at 5 fps, and 5 fps still reads as motion.
- x264 ``preset=ultrafast`` with a constant quantiser, ``qp=23``: ``crf=23`` needs x264's
  low-resolution lookahead and took 73 ms for a 127 kB file against 37 ms and 62 kB; superfast
  and veryfast took 110 and 124 ms. ``tune=stillimage`` gives the very same bytes (ultrafast has
  already turned off what it tunes), so it is not set.
- A keyframe every ``_KEYINT_S`` (5) seconds: a seek decodes at most 25 frames. Keyframes cost
  size, not time: one a second made the 5 s file 261 kB instead of 62 kB in the same time.
- ``threads=1``: x264's output depends on its thread count, and its default derives that from
  the CPU count (and affinity), so the same placeholder would encode differently on another
  machine or under ``taskset``. On one core, more threads would only take turns.
- Determinism: the muxer runs with ``fflags=+bitexact`` (no "Lavf" version string) and no
  ``creation_time`` (the MP4's times stay 0), the AAC encoder with ``flags=+bitexact`` (no
  "Lavc" string in its first frame), and x264's SEI message (its version, copyright years and
  options) is dropped by a bitstream filter. What remains depends on the encoders' code alone:
  the same bytes run after run and process after process; another libx264 or FFmpeg build
  (another PyAV wheel) may still encode differently.
- Faststart: ``movflags=+faststart`` moves ``moov`` before ``mdat`` at the end. The muxer opens
  the output again to read it back; for an in-memory output that is the ``io_open`` callback,
  which hands it a copy of what was written so far.
- Audio, when asked: silent mono AAC-LC at 48 kHz (FFmpeg's native encoder), encoded in step
  with the video so the muxer interleaves the two. Its priming samples are hidden by the edit
  list the muxer writes, so the track lasts exactly the requested duration.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from . import labels

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.audio.stream import AudioStream
    from av.bitstream import BitStreamFilterContext
    from av.container import OutputContainer
    from av.packet import Packet
    from av.video.plane import VideoPlane

__all__ = ["FPS", "VideoPlaceholder", "render_mp4"]

#: Frames per second of every placeholder video.
FPS = 5
_TIMESCALE = 90_000  # ticks per second of the video track (MPEG's clock); FPS divides it
_KEYINT_S = 5  # seconds between keyframes
_QP = 23  # x264's constant quantiser for P-frames (I-frames get about 20)
_X264 = {"preset": "ultrafast", "qp": str(_QP)}
# x264 puts its version, copyright years and options in an SEI message of the first frame; no
# x264 option turns it off, so this bitstream filter drops SEI NAL units (type 6).
_DROP_SEI = "filter_units=remove_types=6"
_SAMPLE_RATE = 48_000
_AAC_FRAME = 1024  # samples per AAC frame
_MAX_SIDE = 8192  # H.264 level 6.2's widest frame (8192x4320); Chromium decodes up to 16384
# BT.709 tags of the stream (the values of FFmpeg's AVColorPrimaries, AVColorTransferCharacteristic
# and AVColorSpace, and AVCOL_RANGE_MPEG): the lookup tables below compute limited-range BT.709.
_BT709 = 1
_RANGE_MPEG = 1


@dataclass(frozen=True, slots=True)
class VideoPlaceholder:
    """Everything that determines the bytes of one placeholder video."""

    width: int  # even, >= 2
    height: int  # even, >= 2
    duration_s: float  # > 0; the file lasts exactly this long
    seed: int  # drives the background colour
    model: str
    prompt: str  # arbitrary user text; sanitised before drawing
    task_id: str
    index: int = 0  # which video of the task (0-based)
    audio: bool = False  # add a silent AAC track


def render_mp4(
    p: VideoPlaceholder, *, max_pixels: int = 1920 * 1080, max_duration_s: float = 60.0
) -> bytes:
    """Encode the placeholder as a faststart H.264 (yuv420p) MP4; the same input gives the
    same bytes.

    Raises ValueError before allocating anything if a side is odd, < 2 or > 8192, the pixel
    count exceeds `max_pixels`, or the duration is not a finite number in (0, max_duration_s].
    """
    ticks = _validate(p, max_pixels, max_duration_s)
    import av  # here, not at the top: the server imports media renderers on first download

    w, h = p.width, p.height
    count = -(-ticks * FPS // _TIMESCALE)  # ceil: the last frame may be shorter than 1/FPS
    counters = [_counter(i / FPS, p.duration_s) for i in range(count)]
    band = _Band.layout(w, h, counters)
    canvas = _static_canvas(p, band)
    luts = _yuv_luts(labels.palette(p.seed))

    # One frame for the whole video: x264 copies the picture inside encode(), so each frame
    # only overwrites the band's rows of the previous one.
    frame = av.VideoFrame(w, h, "yuv420p")
    planes = _to_planes(canvas, luts)
    for plane, image in zip(frame.planes, planes, strict=True):
        _blit(plane, image, 0, whole=True)
    static_band = _crop_rows(planes, band.top, band.height)
    text_yuv = _colour(luts, labels.TEXT)

    buf = io.BytesIO()
    container = av.open(
        buf,
        "w",
        format="mp4",
        options={"movflags": "+faststart", "fflags": "+bitexact"},
        io_open=lambda url, flags, options: io.BytesIO(buf.getvalue()),
    )
    try:
        video = container.add_stream("libx264", rate=FPS, options=dict(_X264))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        cc = video.codec_context
        cc.time_base = Fraction(1, _TIMESCALE)
        cc.thread_count = 1
        cc.gop_size = _KEYINT_S * FPS
        cc.color_primaries = cc.color_trc = cc.colorspace = _BT709
        cc.color_range = _RANGE_MPEG
        audio = _SilentAudio(container, p.duration_s) if p.audio else None

        step = _TIMESCALE // FPS
        strip: list[BitStreamFilterContext] = []  # made once the encoder has opened

        def mux_video(packets: list[Packet[Any]], *, last: bool = False) -> None:
            if not strip:
                strip.append(av.bitstream.BitStreamFilterContext(_DROP_SEI, video))
            out = [q for packet in packets for q in strip[0].filter(packet)]
            if last:
                out.extend(strip[0].filter(None))
            for packet in out:
                assert packet.pts is not None
                packet.duration = min(step, ticks - packet.pts)  # exact end on the last one
            container.mux(out)

        for i, text in enumerate(counters):
            progress = i / (count - 1) if count > 1 else 1.0
            moving = band.draw(static_band, text_yuv, progress, text)
            for plane, image, top in zip(frame.planes, moving, _plane_rows(band.top), strict=True):
                _blit(plane, image, top)
            frame.pts = i * step
            mux_video(video.encode(frame))
            if audio is not None:
                audio.until((i + 1) / FPS)
        mux_video(video.encode(None), last=True)
        if audio is not None:
            audio.finish()
    finally:
        container.close()
    return buf.getvalue()


def _validate(p: VideoPlaceholder, max_pixels: int, max_duration_s: float) -> int:
    """The duration in video ticks, after checking the size and duration; ValueError if bad."""
    w, h = p.width, p.height
    for name, side in (("width", w), ("height", h)):
        if isinstance(side, bool) or not isinstance(side, int):
            raise ValueError(f"video {name} must be an integer, got {side!r}")
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise ValueError(f"video size {w}x{h} is invalid: width and height must be even and >= 2")
    if w > _MAX_SIDE or h > _MAX_SIDE:
        raise ValueError(f"video size {w}x{h} is invalid: a side exceeds {_MAX_SIDE} pixels")
    if w * h > max_pixels:
        raise ValueError(
            f"video size {w}x{h} ({w * h} pixels) exceeds the limit of {max_pixels} pixels"
        )
    d = p.duration_s
    if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d):
        raise ValueError(f"video duration must be a finite number of seconds, got {d!r}")
    if not 0 < d <= max_duration_s:
        raise ValueError(f"video duration {d} s is not in (0, {max_duration_s}] s")
    ticks = round(d * _TIMESCALE)
    if ticks < 1:
        raise ValueError(f"video duration {d} s is shorter than 1/{_TIMESCALE} s")
    return ticks


def _counter(t: float, duration: float) -> str:
    """The running counter, such as "2.0 / 5 s" (tenths are exact at 5 fps)."""
    return f"{t:.1f} / {_seconds(duration)} s"


def _seconds(duration: float) -> str:
    """A duration for display: "5", "2.5", "0.3333"."""
    return f"{duration:.4g}"


# --------------------------------------------------------------------------- picture


_Luts = tuple[list[int], list[int], list[int]]  # palette index -> Y, U, V
_Planes = tuple[Image.Image, Image.Image, Image.Image]  # "L" images: Y, then U and V at half size
_Yuv = tuple[int, int, int]


def _up_even(v: int) -> int:
    return v + (v & 1)


def _down_even(v: int) -> int:
    return v - (v & 1)


@dataclass(frozen=True, slots=True)
class _Band:
    """Geometry of the moving band at the bottom: even rows and columns throughout, so the
    half-resolution U and V planes cover it exactly."""

    top: int  # first row of the band
    height: int  # rows of the band
    bar_x0: int  # the progress bar's columns [bar_x0, bar_x1) ...
    bar_x1: int
    bar_y0: int  # ... and rows [bar_y0, bar_y1), relative to the band
    bar_y1: int
    counter_x: int  # columns [counter_x, counter_x + counter_w) hold the counter; w 0: none
    counter_w: int
    text_y: int  # pen position of the counter's text, relative to the band
    font: labels.Font

    @classmethod
    def layout(cls, w: int, h: int, counters: Sequence[str]) -> _Band:
        """Band, bar and counter for a w x h frame (the counter only if every text fits)."""
        stroke = labels.stroke_width(w, h)
        size = labels.font_size(w, h)
        font = labels.load_font(size)
        line = labels.line_height(font)
        pad = max(2, size // 4)
        height = max(2, min(_up_even(line + 2 * pad), _down_even(h - stroke)))
        top = max(0, _down_even(h - stroke - height))
        x0, x1 = _up_even(stroke + pad), _down_even(w - stroke - pad)
        if x1 - x0 < 2:
            x0, x1 = 0, w
        y0 = _down_even(height // 3)
        y1 = max(y0 + 2, _up_even(height - height // 3))
        text_w = _up_even(math.ceil(max(labels.text_width(font, t) for t in counters)))
        gap = _up_even(pad)
        if line <= height and text_w + gap + 2 <= x1 - x0:
            return cls(top, height, x0, x1 - text_w - gap, y0, y1, x1 - text_w, text_w,
                       (height - line) // 2, font)  # fmt: skip
        return cls(top, height, x0, x1, y0, y1, 0, 0, 0, font)

    def draw(self, static: _Planes, colour: _Yuv, progress: float, counter: str) -> _Planes:
        """The band's Y, U and V planes in one frame: the bar filled to `progress` and the
        counter, in `colour`, over copies of the static band (whose counter area is blank)."""
        y, u, v = (plane.copy() for plane in static)
        end = self.bar_x0 + _down_even(round((self.bar_x1 - self.bar_x0) * progress))
        if end > self.bar_x0:
            box = (self.bar_x0, self.bar_y0, end, self.bar_y1)
            y.paste(colour[0], box)
            half = (box[0] // 2, box[1] // 2, box[2] // 2, box[3] // 2)
            u.paste(colour[1], half)
            v.paste(colour[2], half)
        if self.counter_w:
            mask = Image.new("L", (self.counter_w, self.height), 0)
            x = self.counter_w - labels.text_width(self.font, counter)  # right-aligned
            labels.draw_text(mask, x, self.text_y, counter, self.font)
            # blending by coverage in Y, U and V is blending in RGB: the planes are affine in it
            y.paste(colour[0], (self.counter_x, 0), mask)
            half_mask = mask.reduce(2)
            u.paste(colour[1], (self.counter_x // 2, 0), half_mask)
            v.paste(colour[2], (self.counter_x // 2, 0), half_mask)
        return y, u, v


def _static_canvas(p: VideoPlaceholder, band: _Band) -> Image.Image:
    """The picture's unchanging part, in palette indices: the placeholder image with its
    label above the band, and the band's panel and empty bar track."""
    parts = [f"{_seconds(p.duration_s)} s at {FPS} fps"]
    if p.audio:
        parts.append("silent audio")
    if p.index:
        parts.append(f"video {p.index + 1}")
    label = labels.Label(model=p.model, prompt=p.prompt, task_id=p.task_id, detail=", ".join(parts))
    w, h = p.width, p.height
    canvas = labels.draw_placeholder(w, h, label, bottom=h - band.top)
    stroke = labels.stroke_width(w, h)
    left, right = (stroke, w - 1 - stroke) if w > 2 * stroke else (0, w - 1)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left, band.top, right, band.top + band.height - 1), fill=labels.PANEL)
    bar = (band.bar_x0, band.top + band.bar_y0, band.bar_x1 - 1, band.top + band.bar_y1 - 1)
    draw.rectangle(bar, fill=labels.LINE)
    return canvas


def _yuv_luts(palette: Sequence[int]) -> _Luts:
    """Palette index -> Y, U, V (BT.709, limited range: Y 16..235, U and V 16..240)."""
    ys, us, vs = [16] * 256, [128] * 256, [128] * 256
    for i in range(len(palette) // 3):
        r, g, b = (c / 255 for c in palette[3 * i : 3 * i + 3])
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        ys[i] = round(16 + 219 * y)
        us[i] = round(128 + 224 * (b - y) / 1.8556)
        vs[i] = round(128 + 224 * (r - y) / 1.5748)
    return ys, us, vs


def _to_planes(indices: Image.Image, luts: _Luts) -> _Planes:
    """Y at full resolution, U and V averaged over 2x2 blocks (4:2:0)."""
    y, u, v = luts
    return indices.point(y), indices.point(u).reduce(2), indices.point(v).reduce(2)


def _colour(luts: _Luts, index: int) -> _Yuv:
    return luts[0][index], luts[1][index], luts[2][index]


def _crop_rows(planes: _Planes, top: int, height: int) -> _Planes:
    """Rows [top, top + height) of a frame's planes (half as many, from top / 2, in U and V)."""
    y, u, v = planes
    return (
        y.crop((0, top, y.width, top + height)),
        u.crop((0, top // 2, u.width, (top + height) // 2)),
        v.crop((0, top // 2, v.width, (top + height) // 2)),
    )


def _plane_rows(top: int) -> tuple[int, int, int]:
    return top, top // 2, top // 2


def _blit(plane: VideoPlane, image: Image.Image, top: int, *, whole: bool = False) -> None:
    """Copy an "L" image into `plane` from row `top` (rows of the plane are ``line_size``
    bytes, padding included). ``whole`` writes every byte of the plane, padding as zeros, so
    no uninitialised memory reaches the encoder."""
    stride, width = plane.line_size, image.width
    data = image.tobytes()
    if whole:
        if stride != width:
            padded = Image.new("L", (stride, image.height), 0)
            padded.paste(image, (0, 0))
            data = padded.tobytes()
        plane.update(data)
        return
    view = memoryview(plane)
    if stride == width:
        view[top * stride : top * stride + len(data)] = data
        return
    for row in range(image.height):
        start = (top + row) * stride
        view[start : start + width] = data[row * width : (row + 1) * width]


# --------------------------------------------------------------------------- audio


class _SilentAudio:
    """A silent mono AAC track, encoded up to a given time so it interleaves with the video."""

    def __init__(self, container: OutputContainer, duration_s: float) -> None:
        import av

        self._av = av
        self._container = container
        # bitexact: FFmpeg's AAC encoder otherwise writes its version ("Lavc62...") in frame 1
        options = {"flags": "+bitexact"}
        self._stream: AudioStream = container.add_stream("aac", rate=_SAMPLE_RATE, options=options)
        self._stream.layout = "mono"
        self._total = max(1, round(duration_s * _SAMPLE_RATE))  # an empty track would vanish
        self._done = 0
        self._frame = self._silence(_AAC_FRAME)

    def _silence(self, samples: int) -> AudioFrame:
        frame = self._av.AudioFrame(format="fltp", layout="mono", samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = _SAMPLE_RATE
        return frame

    def until(self, t: float | None) -> None:
        """Encode silence up to second `t` (at most the whole duration; None: all of it)."""
        target = self._total if t is None else min(self._total, round(t * _SAMPLE_RATE))
        while self._done < target:
            n = min(_AAC_FRAME, self._total - self._done)
            frame = self._frame if n == _AAC_FRAME else self._silence(n)
            frame.pts = self._done
            self._container.mux(self._stream.encode(frame))
            self._done += n

    def finish(self) -> None:
        """Encode the rest and flush the encoder."""
        self.until(None)
        self._container.mux(self._stream.encode(None))
