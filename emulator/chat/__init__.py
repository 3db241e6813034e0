"""OpenAI-compatible chat completions (``POST /api/v1/chat/completions``, model ``gemini``).

One module per concept: :mod:`.request` validates the body, :mod:`.reply` composes the answer,
:mod:`.schema` generates JSON Schema instances (structured output, tool arguments),
:mod:`.usage` counts tokens and credits, :mod:`.wire` shapes the objects and the SSE stream,
:mod:`.rules` compiles a scenario's ``chat:`` section, :mod:`.handler` serves the route, and
:mod:`.core` is everything taken from the rest of the emulator. The route's path is
``emulator.wire.CHAT_PATH``; the package loads on the first chat call (``emulator.app``), not at
start-up.
"""

from __future__ import annotations

__all__: list[str] = []
