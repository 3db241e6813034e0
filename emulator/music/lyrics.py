"""Timestamped lyrics of a finished clip: its lines spread evenly over the clip, in seconds, and
a seeded waveform.

[choice] The lyrics are the request's ``prompt`` (custom lyrics); a task with a description
only gets seeded placeholder lines. A ``[…]`` line (``[Verse]``, ``[Chorus]``) is a
``segment_break`` carrying the style; every other non-empty line is a ``lyric``.
"""

from __future__ import annotations

import random
from typing import Any

from ..catalogue import Model
from ..tasks import Task

__all__ = ["lyric_lines", "lyrics_data"]

_WORDS = ("night", "light", "river", "heart", "road", "fire", "rain", "song", "home", "sky",
          "dream", "shadow", "morning", "ocean", "voice", "dance")  # fmt: skip


def lyric_lines(task: Task) -> list[str]:
    """The lines of the task's lyrics: its ``prompt``, else seeded placeholder lines."""
    prompt = task.params.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return [line.strip() for line in prompt.splitlines() if line.strip()]
    rng = random.Random(f"lyrics:{task.seed}")
    lines = ["[Verse]"]
    for n in range(8):
        if n == 4:
            lines.append("[Chorus]")
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6))).capitalize())
    return lines


def lyrics_data(task: Task, model: Model, index: int, waveform: int) -> dict[str, Any]:
    """``data`` of ``POST /audio/music/timestamped-lyrics`` for clip ``index``."""
    lines = lyric_lines(task)
    seconds = model.file_seconds(task.params, task.seed, index)
    sung = [line for line in lines if not _is_break(line)]
    step = seconds / max(1, len(sung))
    style = str(task.params.get("style", ""))
    params: list[dict[str, Any]] = []
    n = 0
    for line in lines:
        if _is_break(line):
            params.append({"text": line, "metadata": {"style": style}, "type": "segment_break"})
        else:
            start, end = round(n * step, 2), round((n + 1) * step, 2)
            params.append({"text": line, "start": start, "end": end, "type": "lyric"})
            n += 1
    rng = random.Random(f"waveform:{task.seed}:{index}")
    wave = [round(rng.random(), 3) for _ in range(waveform)]
    return {"text": "\n".join(lines), "lyricParams": params, "waveform": wave}


def _is_break(line: str) -> bool:
    return line.startswith("[") and line.endswith("]")
