"""Render time of the placeholder MP3 (``emulator.audio.render_mp3``), pinned to one CPU.

For 30 s of speech (the target: at most 50 ms), 30 s and 240 s of music and 5 s of speech: the
median over distinct seeds (the renderer keeps no cache, so every call is a first render), the
part of it spent making the units and timeline (``_plan``: synthesis in Python), and the file
size. For comparison, libmp3lame encoding the same 30 s of speech whole, as the splicing avoids;
and the very first call in the process.

Usage: ``python benchmarks/render_audio.py [--repeats 15] [--cpu N]``. Exit code 0 whatever the
verdict.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's emulator

from processes import pin

from emulator import audio
from emulator.audio import AudioPlaceholder, render_mp3

CASES = [("speech", 30.0), ("music", 30.0), ("music", 240.0), ("speech", 5.0)]
TARGET = ("speech", 30.0, 50.0)  # kind, duration, milliseconds


def times_ms(fn: Callable[[int], object], repeats: int) -> list[float]:
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    print(pin(args.cpu))

    started = time.perf_counter()
    render_mp3(AudioPlaceholder(30.0, seed=10**9, kind="speech"))
    first_ms = (time.perf_counter() - started) * 1000

    print(f"\n== render_mp3, {args.repeats} seeds each (ms) ==")
    print(f"{'clip':<14}{'median':>9}{'min':>9}{'max':>9}{'of it _plan':>13}{'bytes':>10}")
    medians = {}
    for kind, duration in CASES:

        def render(seed: int, kind: str = kind, duration: float = duration) -> bytes:
            return render_mp3(AudioPlaceholder(duration, seed=seed, kind=kind))

        def plan(seed: int, kind: str = kind, duration: float = duration) -> object:
            return audio._plan(AudioPlaceholder(duration, seed=seed, kind=kind), 600.0)

        runs = times_ms(render, args.repeats)
        planning = statistics.median(times_ms(plan, args.repeats))
        medians[kind, duration] = median = statistics.median(runs)
        size = len(render(0))
        print(
            f"{kind + f' {duration:g} s':<14}{median:>9.1f}{min(runs):>9.1f}{max(runs):>9.1f}"
            f"{planning:>13.1f}{size:>10}"
        )

    speech = audio._plan(AudioPlaceholder(30.0, seed=1, kind="speech"), 600.0).pcm()
    whole = statistics.median(times_ms(lambda _: audio._encode_whole(speech), 3))
    print(f"\nfirst call in the process (30 s speech): {first_ms:.1f} ms")
    print(
        f"libmp3lame encoding the 30 s of speech whole (what the splicing avoids): {whole:.0f} ms"
    )

    kind, duration, limit = TARGET
    got = medians[kind, duration]
    verdict = "PASS" if got <= limit else "FAIL"
    print(
        f"\n{verdict}: first render of {duration:g} s {kind} {got:.1f} ms (target <= {limit:g} ms)"
    )


if __name__ == "__main__":
    main()
