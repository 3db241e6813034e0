"""Placeholder MP3 files for the speech and music families: real MP3 that browsers play, with
the requested duration, audibly fake and deterministic per seed.

Format: MPEG-1 Layer III, 44.1 kHz mono, 32 kbit/s CBR, encoded by libmp3lame through PyAV. The
mp3 muxer writes the Xing/Info frame (frame and byte counts, seek table) with its LAME extension
(encoder delay, end padding), so players report the exact duration and gapless decoders (FFmpeg,
Chromium) return exactly ``round(duration_s * 44100)`` samples. No ID3 date or encoder version:
the bytes depend only on the placeholder (and the libmp3lame build).

Sound: ``speech`` is a talking robot, syllables of a buzzy vowel (a glottal pulse train through
two formants) at a few seeded pitches, grouped into words by short pauses and into sentences by
longer ones; ``music`` is a seeded pentatonic melody of soft plucked notes (15 ms attack,
exponential decay), phrases A A' B A over and over. Peak about -12 dBFS.

Speed, measured on this machine (one core of two, shared; ``benchmarks/render_audio.py``):
libmp3lame takes 8-9 ms per second of this speech at ``compression_level`` 9, its fastest (the
default costs 1.6 times that, 0 six times; on these tones 9 even decodes closer to its input),
so 30 s encoded whole take 250-300 ms, five times the 50 ms target, and 240 s of music 1.9-2.2
s. Hence the file is spliced from whole MP3 frames:

* The sound is made of *units* (a syllable, a note) lasting a whole number of frames (1152
  samples), with 800 samples of silence at each end; pauses are whole frames of silence. A seed
  uses at most 6 syllables or 7 notes, plus one made shorter to fill the end of the clip.
* Each unit is encoded once, all in one libmp3lame session (median 1.1 s of audio for speech,
  2.1 s for music), placed so that every unit starts on a frame boundary of the decoded output,
  with the bit reservoir off: each frame carries all of its own data (``main_data_begin`` 0).
* The file is those frames in timeline order, muxed through PyAV's mp3 muxer, which counts them
  for the Info frame; the last packet's ``skip_samples`` side data gives it the end padding.

Why it decodes like the session: a frame's output depends on its own data and on the overlap
the previous frame hands on (the second half of its MDCT, the synthesis filterbank's memory).
Around every splice both sides are silent for 800 samples, so the frames there quantise to zero
wherever they sat in the session, and the overlap they hand on is zero in both places. Measured
on tones: with 576 samples of margin the splices differed from the session by up to 68 (of a
peak of 8192) in 16-bit samples, with 800 by less than one (the tests check it, and compare the
file with the PCM it stands for). The cost is at least 36 ms of silence between two units,
which suits syllables and plucked notes.

Result, median first render (there is no cache) on one core, over three runs: 30 s speech
16-18 ms (of which 4 ms making the units in Python), 30 s music 28-32 ms (10-13 ms), 240 s
music 40-47 ms, 5 s speech 16-26 ms; 4.0 kB per second of audio (30 s: 120 kB). Importing this
module (PyAV) takes about 90 ms: import it on the first render, not at start-up.
"""

from __future__ import annotations

import array
import hashlib
import io
import math
import random
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import repeat
from operator import mul

import av
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

__all__ = ["BITRATE", "KINDS", "SAMPLE_RATE", "AudioPlaceholder", "render_mp3"]

SAMPLE_RATE = 44100
BITRATE = 32000
KINDS = ("speech", "music")

FRAME = 1152  # samples per MPEG-1 Layer III frame
#: libmp3lame's initial padding (its 576-sample encoder delay plus the decoder's 529): what the
#: LAME tag tells decoders to drop at the start
DELAY = 1105
_MARGIN = 800  # silence at each end of a unit: the splices decode exactly (measured, see above)
_MIN_UNIT = 3  # frames: the shortest unit (42 ms of sound) made to fill the end of a short clip
_PEAK = 0.25 * 32767  # -12 dBFS
_QUALITY = "9"  # libmp3lame's fastest; on these tones closer to the input than the default
_TITLE_CHARS = 200
Envelope = Callable[[float, float], float]  # (t, length) in seconds -> gain 0..1

#: (F1, F2) formant frequencies in Hz of the robot's vowels: a, e, i, o, u
_VOWELS = ((800, 1200), (500, 1900), (300, 2300), (500, 900), (330, 800))
#: major and minor pentatonic scales, semitones above the root: 6 notes and the tonic
_PENTATONIC = ((0, 2, 4, 7, 9, 12, 0), (0, 3, 5, 7, 10, 12, 0))
_TONIC = 6  # the last note of a phrase: the root, held for two beats


@dataclass(frozen=True, slots=True)
class AudioPlaceholder:
    """Everything that determines the bytes of one placeholder MP3."""

    duration_s: float  # to the sample in gapless decoders; the frames hold at most one more
    seed: int  # the voice or the tune
    kind: str = "speech"  # "speech" | "music"
    title: str = ""  # ID3 title (e.g. the model), optional
    task_id: str = ""  # ID3 comment "{task_id} #{index}", optional
    index: int = 0


def render_mp3(p: AudioPlaceholder, *, max_duration_s: float = 600.0) -> bytes:
    """Encode the placeholder as MP3 bytes (the same bytes for the same placeholder).

    Raises ValueError before allocating anything for a duration that is not a finite number
    above 0 and at most `max_duration_s`, or an unknown kind.
    """
    return _encode(_plan(p, max_duration_s), _metadata(p))


def _plan(p: AudioPlaceholder, max_duration_s: float) -> _Plan:
    """The units and timeline of the placeholder, checked first."""
    samples = _sample_count(p.duration_s, max_duration_s)
    if p.kind not in KINDS:
        raise ValueError(f"audio kind {p.kind!r} is invalid: expected one of {KINDS}")
    digest = hashlib.blake2b(
        f"{p.kind}:{p.seed}".encode(), digest_size=8, person=b"aio-audio"
    ).digest()
    plan = _Plan(samples, random.Random(int.from_bytes(digest, "big")))
    if p.kind == "speech":
        _speech(plan)
    else:
        _music(plan)
    return plan


def _sample_count(duration_s: float, max_duration_s: float) -> int:
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise ValueError(f"audio duration must be a number of seconds, got {duration_s!r}")
    try:
        seconds = float(duration_s)
    except OverflowError:  # an int beyond any float
        seconds = math.inf if duration_s > 0 else -math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"audio duration {seconds!r} s is invalid: it must be above 0")
    if not seconds <= max_duration_s:
        raise ValueError(f"audio duration {seconds!r} s exceeds the limit of {max_duration_s!r} s")
    return max(1, round(seconds * SAMPLE_RATE))


def _metadata(p: AudioPlaceholder) -> dict[str, str]:
    tags = {}
    if p.title:
        tags["title"] = p.title[:_TITLE_CHARS]
    if p.task_id:
        tags["comment"] = f"{p.task_id[:_TITLE_CHARS]} #{p.index}"
    return tags


# --------------------------------------------------------------------------- timeline


class _Plan:
    """The clip as units (PCM of whole frames, margins included) and a timeline of unit
    numbers (``None``: a frame of silence), filled up to the frames the duration needs."""

    def __init__(self, samples: int, rng: random.Random) -> None:
        self.samples = samples
        # FFmpeg does not recognise a file of one frame (below 1 ms) as MP3: two at least
        self.frames = max(2, -(-(samples + DELAY) // FRAME))
        self.rng = rng
        self.units: list[bytes] = []
        self._made: dict[tuple[int, int], int] = {}  # (key, frames) -> unit
        self.timeline: list[int | None] = []
        # after the priming frame; the last frame stays silent: the padding cuts its end
        self.free = max(0, self.frames - 2)

    def play(self, key: int, frames: int, make: Callable[[int, int], bytes]) -> bool:
        """Append the unit `make(key, frames)`, made on its first use, or a shorter one to
        fill the end of the clip; False once it is full."""
        if frames > self.free:
            if self.free < _MIN_UNIT:
                return False
            frames = self.free
        unit = self._made.get((key, frames))
        if unit is None:
            unit = self._made[key, frames] = len(self.units)
            self.units.append(make(key, frames))
        self.timeline.append(unit)
        self.free -= frames
        return True

    def rest(self, frames: int) -> bool:
        """Append up to `frames` frames of silence; False once the clip is full."""
        frames = min(frames, self.free)
        self.timeline.extend([None] * frames)
        self.free -= frames
        return self.free > 0

    def session(self) -> bytes:
        """What libmp3lame encodes: a frame of silence (after the encoder's priming frame),
        then every unit, each starting on a frame boundary of the decoded output."""
        return b"".join([bytes(2 * (2 * FRAME - DELAY)), *self.units])

    def order(self) -> list[int]:
        """The session frame for each frame of the file."""
        order = [0]  # the encoder's own first frame: the delay the decoder drops, then silence
        start = 2
        starts = []
        for pcm in self.units:
            starts.append(start)
            start += len(pcm) // (2 * FRAME)
        starts.append(start)
        for unit in self.timeline:
            if unit is None:
                order.append(1)
            else:
                order.extend(range(starts[unit], starts[unit + 1]))
        order.extend(repeat(1, self.frames - len(order)))
        return order

    def pcm(self) -> bytes:
        """The s16 samples the file stands for: the session's frames in file order."""
        session = bytes(2 * DELAY) + self.session()
        size = 2 * FRAME
        timeline = b"".join(session[i * size : (i + 1) * size] for i in self.order())
        return timeline[2 * DELAY : 2 * (DELAY + self.samples)]


def _speech(plan: _Plan) -> None:
    """Words of 1-4 syllables (36-62 ms apart), 80-210 ms between words, 260-470 ms between
    sentences of 3-7 words."""
    rng = plan.rng
    f0 = 90 * 2 ** rng.uniform(0, 1.4)  # 90-237 Hz: the voice
    steps = rng.sample((-5, -3, -2, 0, 2, 3, 5, 7), 6)
    shapes = [(f0 * 2 ** (s / 12), rng.choice(_VOWELS), rng.randint(5, 8)) for s in steps]

    def make(i: int, frames: int) -> bytes:
        freq, vowel, _ = shapes[i]
        return _unit(_vowel(freq, vowel), frames, _syllable)

    while True:
        for _ in range(rng.randint(3, 7)):
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(shapes))
                if not plan.play(i, shapes[i][2], make) or not plan.rest(rng.choice((0, 0, 1))):
                    return
            if not plan.rest(rng.randint(3, 8)):
                return
        if not plan.rest(rng.randint(10, 18)):
            return


def _music(plan: _Plan) -> None:
    """Phrases of 8 beats (a random walk over 6 notes of a pentatonic scale, some rests, then
    the tonic held for two beats), played A A' B A, with a new B each time round."""
    rng = plan.rng
    root = 220 * 2 ** (rng.randint(-5, 4) / 12)  # 165-277 Hz
    scale = rng.choice(_PENTATONIC)
    beat = rng.randint(8, 10)  # frames: 209-261 ms

    def make(degree: int, frames: int) -> bytes:
        return _unit(_pluck(root * 2 ** (scale[degree] / 12)), frames, _decay)

    def phrase() -> list[int | None]:
        degree, out = rng.randrange(1, 5), list[int | None]()
        for _ in range(6):
            degree = min(max(degree + rng.choice((-2, -1, -1, 0, 1, 1, 2)), 0), 5)
            out.append(degree if rng.random() > 0.15 else None)
        return [*out, _TONIC]

    a = phrase()
    a2 = [*a[:4], *phrase()[4:]]
    while True:
        for melody in (a, a2, phrase(), a):
            for degree in melody:
                if degree is None:
                    ok = plan.rest(beat)
                else:
                    ok = plan.play(degree, 2 * beat if degree == _TONIC else beat, make)
                if not ok:
                    return
            if not plan.rest(beat):
                return


# --------------------------------------------------------------------------- synthesis


def _vowel(freq: float, formants: tuple[int, int]) -> list[float]:
    """One period of a buzzy vowel: a glottal pulse ringing through two formants."""
    period = round(SAMPLE_RATE / freq)
    (f1, f2), w = formants, 2 * math.pi / SAMPLE_RATE
    wave = [
        math.exp(-i / 160) * (math.sin(w * f1 * i) + 0.5 * math.sin(w * f2 * i))
        for i in range(period)
    ]
    top = max(map(abs, wave))
    return [x / top for x in wave]


def _pluck(freq: float) -> list[float]:
    """A soft tone (sine with a little second and third harmonic) as a table of whole cycles
    at least 200 samples long, so the pitch is right to about 4 cents."""
    cycles = max(1, math.ceil(200 * freq / SAMPLE_RATE))
    length = round(cycles * SAMPLE_RATE / freq)
    w = 2 * math.pi * cycles / length
    wave = [
        math.sin(w * i) + 0.3 * math.sin(2 * w * i) + 0.1 * math.sin(3 * w * i)
        for i in range(length)
    ]
    top = max(map(abs, wave))
    return [x / top for x in wave]


def _syllable(t: float, length: float) -> float:
    return max(0.0, min(1.0, t / 0.012, (length - t) / 0.03))


def _decay(t: float, length: float) -> float:
    return max(0.0, min(1.0, t / 0.015, (length - t) / 0.04)) * math.exp(-t / (0.1 + length / 4))


def _unit(wave: list[float], frames: int, envelope: Envelope) -> bytes:
    """`frames` frames of s16 PCM: silent margins around `wave` repeated under `envelope`.

    The gain is set per period of the wave, in 0.5 dB steps, and per sample only where it
    changes by more than 5% within one period (attack, release): the rest is one scaled period
    per step, repeated (bytes multiplication), so that few samples are computed in Python.
    """
    size = frames * FRAME - 2 * _MARGIN
    period = len(wave)
    count = size // period
    length = count * period / SAMPLE_RATE
    step = period / SAMPLE_RATE
    scaled: dict[int, bytes] = {}
    parts = [bytes(2 * _MARGIN)]
    run_level, run = -1, 0
    for k in range(count):
        g0, g1 = envelope(k * step, length), envelope((k + 1) * step, length)
        if abs(g1 - g0) > 0.05:
            if run:
                parts.append(scaled[run_level] * run)
                run = 0
            slope = (g1 - g0) / period
            ramp = [int(x * _PEAK * (g0 + slope * i)) for i, x in enumerate(wave)]
            parts.append(array.array("h", ramp).tobytes())
            continue
        level = round(-40 * math.log10(max(g0 + g1, 2e-4) / 2))  # in 0.5 dB steps
        if level != run_level:
            if run:
                parts.append(scaled[run_level] * run)
            run_level, run = level, 0
            if level not in scaled:
                factor = repeat(_PEAK * 10 ** (-level / 40), period)
                scaled[level] = array.array("h", map(int, map(mul, wave, factor))).tobytes()
        run += 1
    if run:
        parts.append(scaled[run_level] * run)
    parts.append(bytes(2 * (size - count * period + _MARGIN)))
    return b"".join(parts)


# --------------------------------------------------------------------------- encoding


def _encode(plan: _Plan, metadata: dict[str, str]) -> bytes:
    """Encode the plan's units once and mux their frames in timeline order."""
    buf = io.BytesIO()
    with _output(buf, metadata) as (out, stream):
        packets = _lame(stream, plan.session())
        order = plan.order()
        # the muxer takes its own reference to each packet: one Packet per session frame is
        # muxed again and again with new timestamps (a new Packet per frame costs 3x more)
        out.start_encoding()
        time_base = stream.time_base or Fraction(1, SAMPLE_RATE)
        for packet in packets:
            packet.stream = stream
            packet.time_base = time_base
        for k, index in enumerate(order[:-1]):
            packet = packets[index]
            packet.pts = packet.dts = k * FRAME - DELAY
            out.mux_one(packet)
        # the last one says how many samples of it are padding (for the LAME tag), in side data
        # like the encoder put on its own last packet
        last = av.Packet(bytes(packets[order[-1]]))
        last.stream = stream
        last.time_base = time_base
        last.pts = last.dts = (plan.frames - 1) * FRAME - DELAY
        skip = packets[-1].get_sidedata("skip_samples")
        padding = plan.frames * FRAME - DELAY - plan.samples
        skip.update(struct.pack("<IIBB", 0, padding, 0, 0))
        last.set_sidedata(skip)
        out.mux_one(last)
    return buf.getvalue()


def _encode_whole(pcm: bytes) -> bytes:
    """`pcm` (s16 mono) encoded straight through, as the splicing avoids: the reference the
    tests and the benchmark compare with."""
    buf = io.BytesIO()
    with _output(buf, {}) as (out, stream):
        out.mux(_lame(stream, pcm))
    return buf.getvalue()


@contextmanager
def _output(
    buf: io.BytesIO, metadata: dict[str, str]
) -> Iterator[tuple[OutputContainer, AudioStream]]:
    """An mp3 muxer writing the Info frame, no encoder versions, with a libmp3lame stream."""
    muxer = {"fflags": "+bitexact", "id3v2_version": "3" if metadata else "0", "write_xing": "1"}
    with av.open(buf, "w", format="mp3", container_options=muxer) as out:
        out.metadata.update(metadata)
        stream = out.add_stream(
            "libmp3lame",
            rate=SAMPLE_RATE,
            layout="mono",
            options={"reservoir": "0", "compression_level": _QUALITY, "flags": "+bitexact"},
        )
        stream.codec_context.bit_rate = BITRATE
        stream.codec_context.format = "s16p"  # mono: the same bytes as s16, no conversion
        yield out, stream


def _lame(stream: AudioStream, pcm: bytes) -> list[Packet[Stream]]:
    """`pcm` through the stream's encoder, flushed: one packet per MP3 frame."""
    frame = av.AudioFrame(format="s16p", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = SAMPLE_RATE
    frame.pts = 0
    return stream.encode(frame) + stream.encode(None)
