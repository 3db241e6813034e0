"""Placeholder MP3 rendering (emulator.audio): the format and duration players see, the level,
speech against music, determinism, bad durations, and the frame splicing decoding exactly as the
libmp3lame session it was cut from."""

from __future__ import annotations

import array
import hashlib
import io
import itertools
import math
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import audio
from emulator.audio import BITRATE, DELAY, FRAME, SAMPLE_RATE, AudioPlaceholder, render_mp3

ROOT = Path(__file__).resolve().parents[1]
LAME_DELAY = 576  # the encoder delay in the LAME tag; decoders add their own 529 (DELAY in all)
#: MPEG-1 Layer III bit rates by header index, kbit/s (the muxer's Info frame needs more than 32)
KBITS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


@dataclass
class Decoded:
    format: str
    codec_id: int
    sample_rate: int
    channels: int
    bit_rate: int
    duration_s: float  # the container's, from the Info frame
    samples: array.array[float]  # float32 as FFmpeg's decoder returns them, gapless-trimmed


def decode(body: bytes) -> Decoded:
    samples = array.array("f")
    with av.open(io.BytesIO(body), "r") as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            assert frame.format.name == "fltp"
            samples.frombytes(bytes(frame.planes[0])[: 4 * frame.samples])
        assert container.duration is not None
        return Decoded(
            container.format.name,
            stream.codec_context.codec.id,
            stream.sample_rate,
            stream.channels,
            stream.bit_rate,
            container.duration / 1e6,
            samples,
        )


@dataclass
class InfoTag:
    tag: bytes  # b"Info" (CBR) or b"Xing"
    frames: int  # audio frames after it
    size: int  # bytes from the Info frame to the end
    delay: int  # LAME tag: encoder delay, samples
    padding: int  # LAME tag: samples after the audio in the last frames


def audio_start(body: bytes) -> int:
    """Offset of the first MP3 frame (after an ID3v2 tag, if any)."""
    if body[:3] != b"ID3":
        return 0
    size = 0
    for byte in body[6:10]:  # syncsafe: 7 bits a byte
        size = size << 7 | byte
    return 10 + size


def info_tag(body: bytes) -> InfoTag:
    start = audio_start(body)
    offset = start + 4 + 17  # header, MPEG-1 mono side information
    tag = body[offset : offset + 4]
    frames, size = struct.unpack(">II", body[offset + 8 : offset + 16])
    lame = offset + 16 + 100  # after the flags, counts and the 100-byte seek table
    packed = int.from_bytes(body[lame + 4 + 21 : lame + 4 + 24], "big")
    return InfoTag(tag, frames, size, packed >> 12, packed & 0xFFF)


def frame_headers(body: bytes) -> list[tuple[int, int, int]]:
    """(header, size, main_data_begin) of every MP3 frame, the Info frame first."""
    offset = audio_start(body)
    frames = []
    while offset < len(body):
        header = int.from_bytes(body[offset : offset + 4], "big")
        assert header >> 21 == 0x7FF, f"lost frame sync at byte {offset}"
        size = 144_000 * KBITS[header >> 12 & 15] // SAMPLE_RATE + (header >> 9 & 1)
        main_data_begin = int.from_bytes(body[offset + 4 : offset + 6], "big") >> 7
        frames.append((header, size, main_data_begin))
        offset += size
    assert offset == len(body)
    return frames


def peak(samples: array.array[float]) -> float:
    return max(max(samples), -min(samples))


def rms_frequency(samples: array.array[float]) -> float:
    """The RMS frequency (Hz) of the signal, from the energy of its first difference: a measure
    of brightness that needs no FFT."""
    energy = math.fsum(x * x for x in samples)
    diff = math.fsum((b - a) ** 2 for a, b in itertools.pairwise(samples))
    return SAMPLE_RATE * math.sqrt(diff / energy) / (2 * math.pi)


def snr_db(samples: array.array[float], pcm: bytes) -> float:
    reference = array.array("h")
    reference.frombytes(pcm)
    noise = math.fsum((a * 32768 - b) ** 2 for a, b in zip(samples, reference, strict=True))
    return 10 * math.log10(math.fsum(b * b for b in reference) / noise)


# -- format and duration --------------------------------------------------------------


CASES = [("speech", 1.0), ("speech", 3.4), ("speech", 30.0), ("music", 30.0), ("music", 240.0)]


@pytest.mark.parametrize(("kind", "duration"), CASES)
def test_is_mp3_44k1_mono_32k_cbr_of_the_requested_duration(kind: str, duration: float) -> None:
    body = render_mp3(AudioPlaceholder(duration, seed=11, kind=kind))
    decoded = decode(body)
    assert decoded.format == "mp3"
    assert decoded.codec_id == av.codec.Codec("mp3", "r").id
    assert (decoded.sample_rate, decoded.channels, decoded.bit_rate) == (SAMPLE_RATE, 1, BITRATE)
    samples = round(duration * SAMPLE_RATE)
    # FFmpeg (as Chromium) drops the delay and padding the LAME tag declares: exact
    assert len(decoded.samples) == samples
    assert decoded.duration_s == pytest.approx(duration, abs=1 / SAMPLE_RATE)
    # and the frames hold no more than that plus the decoder's delay and one frame
    tag, (_, *frames) = info_tag(body), frame_headers(body)
    assert tag.frames * FRAME - DELAY - samples in range(FRAME)
    audio_bytes = sum(size for _, size, _ in frames)
    assert 8 * audio_bytes / len(frames) * SAMPLE_RATE / FRAME == pytest.approx(BITRATE, rel=0.002)


@pytest.mark.parametrize("kind", ["speech", "music"])
def test_the_info_frame_counts_every_frame_and_declares_delay_and_padding(kind: str) -> None:
    body = render_mp3(AudioPlaceholder(12.3, seed=4, kind=kind))
    tag, (info, *frames) = info_tag(body), frame_headers(body)
    assert tag.tag == b"Info"  # CBR: every frame at 32 kbit/s
    assert tag.frames == len(frames)
    assert info[0] >> 12 & 15 > 1  # the Info frame: the smallest bit rate its tables fit in
    assert tag.size == len(body) - audio_start(body)
    assert tag.delay == LAME_DELAY
    # LAME's convention: frames x 1152 = encoder delay + samples + padding
    assert tag.frames * FRAME == LAME_DELAY + round(12.3 * SAMPLE_RATE) + tag.padding
    for header, _, main_data_begin in frames:
        assert header >> 19 & 3 == 3  # MPEG-1
        assert header >> 17 & 3 == 1  # Layer III
        assert header >> 12 & 15 == 1  # 32 kbit/s
        assert header >> 10 & 3 == 0  # 44.1 kHz
        assert header >> 6 & 3 == 3  # mono
        # no bit reservoir: every frame carries its own data, so frames can be reordered
        assert main_data_begin == 0


def test_the_splices_decode_exactly_like_the_session_they_were_cut_from() -> None:
    for kind in ("speech", "music"):
        plan = audio._plan(AudioPlaceholder(9.7, seed=3, kind=kind), 600)
        spliced = decode(audio._encode(plan, {})).samples
        session = decode(audio._encode_whole(plan.session())).samples
        order = plan.order()
        expected = array.array("f")
        for t in range(plan.samples):
            frame, offset = divmod(t + DELAY, FRAME)
            expected.append(session[order[frame] * FRAME + offset - DELAY])
        # equal to well below one 16-bit step (the float decoder's rounding at the joins)
        assert max(abs(a - b) for a, b in zip(spliced, expected, strict=True)) < 1e-4


@pytest.mark.parametrize("kind", ["speech", "music"])
def test_the_file_sounds_like_its_pcm_as_well_as_a_whole_encode_would(kind: str) -> None:
    plan = audio._plan(AudioPlaceholder(6.2, seed=8, kind=kind), 600)
    pcm = plan.pcm()
    assert len(pcm) == 2 * plan.samples
    spliced = snr_db(decode(render_mp3(AudioPlaceholder(6.2, seed=8, kind=kind))).samples, pcm)
    whole = snr_db(decode(audio._encode_whole(pcm)).samples, pcm)
    assert spliced > 18  # libmp3lame's output is 0.95x its input: that alone caps it at 26 dB
    assert spliced == pytest.approx(whole, abs=1.0)


def test_without_title_or_task_there_is_no_id3_tag_and_with_them_a_title_and_comment() -> None:
    plain = render_mp3(AudioPlaceholder(2.0, seed=1))
    assert plain[:2] == b"\xff\xfb"  # straight into the Info frame
    tagged = render_mp3(
        AudioPlaceholder(2.0, seed=1, title="eleven_multilingual_v2", task_id="n9_el", index=2)
    )
    assert tagged[:3] == b"ID3"
    with av.open(io.BytesIO(tagged)) as container:
        assert container.metadata["title"] == "eleven_multilingual_v2"
        assert container.metadata["comment"] == "n9_el #2"
    assert decode(tagged).samples == decode(plain).samples  # the same audio
    for body in (plain, tagged):
        assert b"Lavf6" not in body and b"Lavc" not in body  # no library versions (bitexact)


# -- sound ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["speech", "music"])
@pytest.mark.parametrize("seed", [0, 1, 2**40 + 3, -7])
def test_is_audible_but_quiet(kind: str, seed: int) -> None:
    samples = decode(render_mp3(AudioPlaceholder(8.0, seed=seed, kind=kind))).samples
    level = peak(samples)
    assert 10 ** (-18 / 20) < level < 10 ** (-6 / 20)  # designed for -12 dBFS
    loud = sum(1 for i in range(0, len(samples), 441) if peak(samples[i : i + 441]) > 0.02)
    assert loud > 0.4 * len(samples) / 441  # sound in most 10 ms windows


@pytest.mark.parametrize("duration", [1e-6, 0.001, 0.01, 0.05])
def test_a_clip_of_a_few_milliseconds_is_still_an_mp3_of_that_length(duration: float) -> None:
    # two frames at least: FFmpeg does not recognise a file of one frame as MP3
    decoded = decode(render_mp3(AudioPlaceholder(duration, seed=1)))
    assert len(decoded.samples) == max(1, round(duration * SAMPLE_RATE))


def test_a_short_clip_is_not_silent() -> None:
    for duration in (0.1, 0.3, 1.0):
        assert peak(decode(render_mp3(AudioPlaceholder(duration, seed=2))).samples) > 0.1


@pytest.mark.parametrize("seed", range(6))
def test_speech_is_brighter_than_music(seed: int) -> None:
    speech = decode(render_mp3(AudioPlaceholder(10.0, seed=seed, kind="speech"))).samples
    music = decode(render_mp3(AudioPlaceholder(10.0, seed=seed, kind="music"))).samples
    # formants (300-2300 Hz) against soft notes at 165-554 Hz
    assert rms_frequency(speech) > 550 > rms_frequency(music)


def test_speech_pauses_between_syllables_and_words() -> None:
    samples = decode(render_mp3(AudioPlaceholder(20.0, seed=5))).samples
    window = 441  # 10 ms
    quiet = [peak(samples[i : i + window]) < 0.005 for i in range(0, len(samples), window)]
    gaps = [len(run) for run in "".join("q" if q else "s" for q in quiet).split("s") if run]
    assert sum(1 for g in gaps if g >= 3) > 40  # pauses of 30 ms and more, many a second
    assert max(gaps) >= 20  # and a sentence break of 200 ms or more


# -- determinism ----------------------------------------------------------------------


def test_same_placeholder_same_bytes() -> None:
    for kind in ("speech", "music"):
        p = AudioPlaceholder(5.5, seed=99, kind=kind, title="suno", task_id="n1_suno")
        body = render_mp3(p)
        assert render_mp3(p) == body
        assert render_mp3(AudioPlaceholder(5.5, 99, kind, "suno", "n1_suno")) == body


def test_same_bytes_in_another_process() -> None:
    code = (
        "import hashlib\n"
        "from emulator.audio import AudioPlaceholder, render_mp3\n"
        "for kind in ('speech', 'music'):\n"
        "    p = AudioPlaceholder(4.2, 77, kind, 'elevenlabs', 'n7_el', 1)\n"
        "    print(hashlib.sha256(render_mp3(p)).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4321"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    here = [
        hashlib.sha256(render_mp3(AudioPlaceholder(4.2, 77, kind, "elevenlabs", "n7_el", 1)))
        for kind in ("speech", "music")
    ]
    assert out.stdout.split() == [h.hexdigest() for h in here]


@pytest.mark.parametrize("kind", ["speech", "music"])
def test_different_seeds_give_different_bytes(kind: str) -> None:
    bodies = {render_mp3(AudioPlaceholder(3.0, seed=seed, kind=kind)) for seed in range(10)}
    assert len(bodies) == 10


def test_speech_and_music_of_one_seed_differ() -> None:
    assert render_mp3(AudioPlaceholder(3.0, 1, "speech")) != render_mp3(
        AudioPlaceholder(3.0, 1, "music")
    )


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duration",
    [
        0,
        0.0,
        -1.0,
        -0.0,
        math.nan,
        math.inf,
        -math.inf,
        600.01,
        1e300,
        10**400,
        -(10**400),
        True,
        "3",
    ],
)
def test_bad_durations_are_refused_before_anything_is_made(
    duration: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise AssertionError("allocated before the check")

    monkeypatch.setattr(audio, "_Plan", boom)
    monkeypatch.setattr(audio, "_encode", boom)
    with pytest.raises(ValueError, match="duration"):
        render_mp3(AudioPlaceholder(duration, seed=1))  # type: ignore[arg-type]


def test_the_limit_is_the_callers() -> None:
    assert decode(render_mp3(AudioPlaceholder(10.0, 1), max_duration_s=10.0)).duration_s == 10.0
    with pytest.raises(ValueError, match=r"exceeds the limit of 9\.9 s"):
        render_mp3(AudioPlaceholder(10.0, 1), max_duration_s=9.9)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind 'video'"):
        render_mp3(AudioPlaceholder(1.0, 1, kind="video"))


# -- property -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    tenths=st.integers(1, 200),
    seed=st.integers(-(2**63), 2**63),
    kind=st.sampled_from(["speech", "music"]),
)
def test_any_duration_from_a_tenth_to_twenty_seconds_decodes_to_exactly_its_samples(
    tenths: int, seed: int, kind: str
) -> None:
    duration = tenths / 10
    body = render_mp3(AudioPlaceholder(duration, seed=seed, kind=kind))
    decoded = decode(body)
    assert len(decoded.samples) == round(duration * SAMPLE_RATE)
    assert decoded.duration_s == pytest.approx(duration, abs=1 / SAMPLE_RATE)
    assert info_tag(body).frames == len(frame_headers(body)) - 1
    assert peak(decoded.samples) < 0.5
