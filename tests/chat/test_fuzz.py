"""Schemathesis against the chat operation of the description, with every check: valid and
invalid bodies, no 5xx, every answer (JSON or each SSE event) as described, every valid body
accepted and every invalid one refused."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

from ..test_fuzz import EXAMPLES, FUZZ_KEY, fuzz, operations, within_budget


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(create_app(Config(seed=7, clock="virtual", scenario="instant"))) as server:
        yield server


def test_the_chat_operation_holds_up_to_fuzzing(live: LiveServer) -> None:
    started = time.monotonic()
    chat = operations("chat")
    failures = fuzz(chat, live.url, {"Authorization": f"Bearer {FUZZ_KEY}"}, EXAMPLES)
    assert failures == [], "\n\n".join(failures[:3])
    assert within_budget(started, chat, EXAMPLES)
