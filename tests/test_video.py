"""Placeholder MP4 rendering, checked from the outside: the bytes are decoded with PyAV and the
MP4 boxes are walked by hand."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat

import emulator
from emulator import labels
from emulator.video import FPS, VideoPlaceholder, render_mp4

FRAME_S = 1 / FPS


def make(
    width: int = 320, height: int = 180, duration_s: float = 1.0, **fields: object
) -> VideoPlaceholder:
    values: dict[str, object] = {
        "seed": 42,
        "model": "veo3-fast",
        "prompt": "a red fox running through the snow at dusk",
        "task_id": "n48a1b2c3d4e5f6a7b8_veo",
    }
    values.update(fields)
    return VideoPlaceholder(width, height, duration_s, **values)  # type: ignore[arg-type]


@dataclass
class Probe:
    """What a decoder sees in an MP4."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    duration_s: float  # the container's
    stream_frames: int  # the video track's sample count
    frames: list[av.VideoFrame]
    audio: list[tuple[str, int, float]]  # (codec, sample rate, track duration in s)


def probe(body: bytes) -> Probe:
    with av.open(io.BytesIO(body)) as container:
        assert container.format.name.startswith("mov,mp4")
        (video,) = container.streams.video
        audio = [
            (a.codec_context.name, a.sample_rate, float((a.duration or 0) * (a.time_base or 0)))
            for a in container.streams.audio
        ]
        assert container.duration is not None
        frames = list(container.decode(video=0))
        return Probe(
            codec=video.codec_context.name,
            pix_fmt=frames[0].format.name,
            width=video.codec_context.width,
            height=video.codec_context.height,
            duration_s=container.duration / 1_000_000,
            stream_frames=video.frames,
            frames=frames,
            audio=audio,
        )


def top_level_boxes(body: bytes) -> list[str]:
    """The types of the top-level ISO BMFF boxes, in file order."""
    boxes, offset = [], 0
    while offset < len(body):
        size, kind = struct.unpack_from(">I4s", body, offset)
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", body, offset + 8)
        elif size == 0:  # the box runs to the end of the file
            size = len(body) - offset
        assert size >= 8, f"bad box size {size} at {offset}"
        boxes.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(body)
    return boxes


def diff(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    return ImageChops.difference(a.crop(box), b.crop(box))


# -- format ---------------------------------------------------------------------------


def test_frame_rate_is_low() -> None:
    assert isinstance(FPS, int)
    assert 4 <= FPS <= 8


@pytest.mark.parametrize(
    ("width", "height", "duration_s"),
    [
        (854, 480, 2),
        (1280, 720, 5),
        (1366, 768, 1),
        (1920, 1080, 1),
        (720, 1280, 3),
        (1080, 1080, 1),
        (960, 720, 2),
    ],
)
def test_h264_yuv420p_of_the_requested_size_and_duration(
    width: int, height: int, duration_s: int
) -> None:
    p = probe(render_mp4(make(width, height, duration_s)))
    assert (p.codec, p.pix_fmt) == ("h264", "yuv420p")
    assert (p.width, p.height) == (width, height)
    assert all((f.width, f.height) == (width, height) for f in p.frames)
    assert abs(p.duration_s - duration_s) < FRAME_S
    assert p.duration_s == pytest.approx(duration_s, abs=1e-3)  # exact to the mvhd's 1 ms
    assert len(p.frames) == p.stream_frames == duration_s * FPS
    assert p.audio == []  # no audio unless asked


@pytest.mark.parametrize("duration_s", [0.1, 0.5, 2.3, 7.77, 1 / 3])
def test_fractional_duration_is_exact(duration_s: float) -> None:
    """The last frame is shortened so the file ends exactly at the requested time."""
    p = probe(render_mp4(make(160, 90, duration_s, audio=True)))
    assert p.duration_s == pytest.approx(duration_s, abs=1e-3)
    assert len(p.frames) == math.ceil(duration_s * FPS - 1e-9)
    last = p.frames[-1]
    assert last.time is not None
    assert last.time == pytest.approx((len(p.frames) - 1) * FRAME_S, abs=1e-3)
    ((codec, _, audio_s),) = p.audio
    assert codec == "aac"
    assert audio_s == pytest.approx(duration_s, abs=FRAME_S)


@pytest.mark.parametrize(("width", "height", "duration_s"), [(1280, 720, 5), (720, 1280, 3)])
def test_silent_aac_track_only_when_asked(width: int, height: int, duration_s: int) -> None:
    body = render_mp4(make(width, height, duration_s, audio=True))
    p = probe(body)
    ((codec, rate, audio_s),) = p.audio
    assert codec == "aac"
    assert rate in (44_100, 48_000)
    assert abs(audio_s - duration_s) < FRAME_S
    assert abs(p.duration_s - duration_s) < FRAME_S
    assert len(p.frames) == duration_s * FPS
    with av.open(io.BytesIO(body)) as container:
        samples = list(container.decode(audio=0))
    decoded = sum(f.samples for f in samples)
    assert abs(decoded - duration_s * rate) <= 2048  # AAC frames are 1024 samples
    assert not any(any(bytes(plane)) for f in samples for plane in f.planes)  # silence
    assert probe(render_mp4(make(width, height, duration_s, audio=False))).audio == []


def test_moov_comes_before_mdat() -> None:
    """Faststart: a browser reads the index first and starts playing before the end arrives."""
    for audio in (False, True):
        boxes = top_level_boxes(render_mp4(make(640, 360, 2, audio=audio)))
        assert boxes[0] == "ftyp"
        assert boxes.count("moov") == boxes.count("mdat") == 1
        assert boxes.index("moov") < boxes.index("mdat")


def test_no_muxer_version_and_no_creation_time() -> None:
    body = render_mp4(make(320, 180, 1, audio=True))
    assert b"Lavf" not in body and b"Lavc" not in body
    mvhd = body.index(b"mvhd")
    version, created, modified = body[mvhd + 4], *struct.unpack_from(">II", body, mvhd + 8)
    assert version == 0
    assert created == modified == 0


# -- picture --------------------------------------------------------------------------


def test_something_moves_in_every_frame() -> None:
    images = [f.to_image() for f in probe(render_mp4(make(640, 360, 2))).frames]
    assert images[0].tobytes() != images[-1].tobytes()
    assert all(a.tobytes() != b.tobytes() for a, b in itertools.pairwise(images))
    # what moves is the bottom band (bar and counter); the picture above it stays put, but for
    # x264 refining a few blocks of the keyframe in the next frame
    still, band = (0, 0, 640, 300), (0, 300, 640, 360)
    for im in images[1:]:
        assert max(ImageStat.Stat(diff(im, images[0], still)).mean) < 0.1
        assert max(ImageStat.Stat(diff(im, images[0], band)).mean) > 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 2**31, -5])
def test_background_colour_comes_from_the_seed(seed: int) -> None:
    frame = probe(render_mp4(make(640, 360, 0.2, seed=seed))).frames[0]
    rgb = frame.to_image().getpixel((320, 10))  # above the label, between the cross's arms
    expected = labels.colours(seed)[0]
    assert isinstance(rgb, tuple)
    assert all(abs(a - b) <= 6 for a, b in zip(rgb, expected, strict=True)), (rgb, expected)


def test_label_is_drawn() -> None:
    base = render_mp4(make(640, 360, 0.2))
    for changed in (
        make(640, 360, 0.2, prompt="a blue fox"),
        make(640, 360, 0.2, model="kling-2"),
        make(640, 360, 0.2, task_id="other_veo"),
        make(640, 360, 0.2, index=1),
    ):
        assert render_mp4(changed) != base


# -- determinism ----------------------------------------------------------------------


def test_same_placeholder_gives_identical_bytes() -> None:
    p = make(480, 270, 1.5, prompt="déjà vu 🦊 \u202eabc", index=1, audio=True)
    body = render_mp4(p)
    assert render_mp4(p) == body
    assert render_mp4(replace(p)) == body


def test_output_is_identical_across_processes() -> None:
    """Another interpreter (other hash seed, one CPU if the system allows) gives the same
    bytes; and importing the module does not import PyAV."""
    code = (
        "import hashlib, os, sys\n"
        "from emulator.video import VideoPlaceholder, render_mp4\n"
        "print('av' in sys.modules)\n"
        "if hasattr(os, 'sched_setaffinity'):\n"
        "    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "p = VideoPlaceholder(480, 270, 2.5, 7, 'veo3', 'fox \\U0001f98a', 'n1_veo', 1, True)\n"
        "print(hashlib.sha256(render_mp4(p)).hexdigest())\n"
    )
    root = str(Path(emulator.__file__).resolve().parent.parent)  # the emulator under test
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    imported_av, digest = out.stdout.split()
    assert imported_av == "False"
    here = render_mp4(
        VideoPlaceholder(480, 270, 2.5, 7, "veo3", "fox \U0001f98a", "n1_veo", 1, True)
    )
    assert digest == hashlib.sha256(here).hexdigest()
    assert out.stderr == ""  # neither x264 nor FFmpeg talks on stderr


def test_different_inputs_give_different_bytes() -> None:
    bodies = {render_mp4(make(160, 90, 0.4, seed=seed)) for seed in range(8)}
    assert len(bodies) == 8
    assert render_mp4(make(160, 90, 0.4, audio=True)) != render_mp4(make(160, 90, 0.4))
    assert render_mp4(make(160, 90, 0.4)) != render_mp4(make(160, 90, 0.6))


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [(1281, 720), (1280, 721), (0, 720), (1280, 0), (1, 2), (2, 1), (-2, 2), (2, -2)],
)
def test_odd_or_tiny_sizes_are_rejected(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=rf"{width}x{height} is invalid"):
        render_mp4(make(width, height))


@pytest.mark.parametrize("width", [1280.0, True, "1280", None])
def test_non_integer_sizes_are_rejected(width: object) -> None:
    with pytest.raises(ValueError, match="integer"):
        render_mp4(make(width, 720))  # type: ignore[arg-type]


def test_oversize_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"1922x1080 .*exceeds.*2073600"):
        render_mp4(make(1922, 1080))
    with pytest.raises(ValueError, match=r"322x180 .*exceeds.*57600"):
        render_mp4(make(322, 180), max_pixels=320 * 180)
    assert probe(render_mp4(make(320, 180, 0.2), max_pixels=320 * 180)).width == 320
    with pytest.raises(ValueError, match="exceeds 8192"):
        render_mp4(make(16_384, 2), max_pixels=10**9)


def test_huge_size_is_rejected_before_any_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_allocation(*args: object, **kwargs: object) -> object:
        raise AssertionError("allocation before the size check")

    monkeypatch.setattr(Image, "new", no_allocation)
    monkeypatch.setattr(av, "VideoFrame", no_allocation)
    monkeypatch.setattr(av, "open", no_allocation)
    start = time.perf_counter()
    for bad in (make(100_000, 100_000), make(100_001, 2), make(320, 180, float("inf"))):
        with pytest.raises(ValueError):
            render_mp4(bad, max_pixels=4_194_304)
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    "duration_s", [0, -1, 0.0, -0.5, float("nan"), float("inf"), 60.5, 1e-9, "5", None, True]
)
def test_bad_durations_are_rejected(duration_s: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        render_mp4(make(320, 180, duration_s))  # type: ignore[arg-type]


def test_max_duration_is_a_parameter() -> None:
    with pytest.raises(ValueError, match="duration"):
        render_mp4(make(64, 64, 3), max_duration_s=2.5)
    assert probe(render_mp4(make(64, 64, 2.5), max_duration_s=2.5)).duration_s == 2.5


# -- hostile text ---------------------------------------------------------------------

HOSTILE = [
    "\ud800",
    "\ud800 lone surrogate \udfff",
    "\x00",
    "nul\x00byte\x00and\x07bell\x1b[31mansi",
    "x" * 10_000,
    "word " * 2_000,
    "\u200f\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd\u200f \u0645\u0631\u062d\u0628\u0627",
    "\U0001f98a\U0001f525 \U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "\u202e\u202d\u2066\ufeff\u200b",
    "e\u0301" * 3_000,
    "\n\t\r  \u2028\u2029",
    "",
    "\uffff\U0010ffff\ue000",
    "\u6f22\u5b57\u304b\u306a\u30ab\u30ca\ud55c\uad6d\uc5b4" * 20,
]


@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_text_renders(prompt: str) -> None:
    p = make(320, 180, 0.4, prompt=prompt, model=prompt[:30], task_id=prompt[:40], audio=True)
    probed = probe(render_mp4(p))
    assert (probed.width, probed.height, len(probed.frames)) == (320, 180, 2)


# -- property -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 64).map(lambda n: 2 * n),
    height=st.integers(1, 64).map(lambda n: 2 * n),
    tenths=st.integers(1, 20),
    seed=st.integers(-(2**63), 2**63),
    audio=st.booleans(),
    prompt=st.text(max_size=80),
)
def test_any_small_even_size_and_duration_decodes(
    width: int, height: int, tenths: int, seed: int, audio: bool, prompt: str
) -> None:
    duration_s = tenths / 10
    p = probe(render_mp4(make(width, height, duration_s, seed=seed, prompt=prompt, audio=audio)))
    assert (p.codec, p.pix_fmt, p.width, p.height) == ("h264", "yuv420p", width, height)
    assert len(p.frames) == p.stream_frames == math.ceil(Fraction(tenths, 10) * FPS)
    assert abs(p.duration_s - duration_s) < FRAME_S
    assert len(p.audio) == audio
