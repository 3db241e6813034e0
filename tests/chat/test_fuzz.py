"""Schemathesis against the chat operation of the description: valid and invalid bodies, no
5xx, every answer (JSON or each SSE event) as described, every invalid body refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from schemathesis.checks import negative_data_rejection
from schemathesis.generation import GenerationMode

from emulator.app import create_app
from emulator.config import Config
from emulator.openapi import build_openapi
from emulator.server import LiveServer

from ..test_fuzz import CONFORMANCE_CHECKS as CHECKS  # (chat's schema is looser than its checks)
from ..test_fuzz import TIMEOUT_S, bounded

EXAMPLES = 40


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(create_app(Config(seed=7, clock="virtual", scenario="instant"))) as server:
        yield server


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_the_chat_operation_holds_up_to_fuzzing(live: LiveServer, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_dict(build_openapi()).include(tag="chat")
    [operation] = [result.ok() for result in api.get_all_operations()]
    failures: list[str] = []

    @bounded(EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(
                base_url=live.url,
                headers={"Authorization": "Bearer aio_fuzz"},
                timeout=TIMEOUT_S,
                checks=[*CHECKS, negative_data_rejection],
            )
        except Exception as exc:
            failures.append(str(exc)[:2000])

    started = time.monotonic()
    run()
    assert failures == [], "\n\n".join(failures[:3])
    assert time.monotonic() - started < 30
