"""The Suno suite (``/api/v1/audio/music/...``) beyond generate, which is a catalogue route.

:mod:`.wire` has the paths, error types, messages and every body (imported by
``emulator.api`` at start-up, so it stays light); :mod:`.handlers` serves the routes (loaded on
the first call), :mod:`.lyrics` composes timestamped lyrics, :mod:`.openapi` describes the
routes. The rules that are data are ``data/music.json``.
"""

from __future__ import annotations

__all__: list[str] = []
