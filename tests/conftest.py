"""Shared fixtures: the app in-process on a virtual clock, driven through Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.config import Config

from .conformance import raise_problems, response_problems

KEY = "aio_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Client(TestClient):
    """TestClient with the emulator's verbs spelled out. Every response it sees is checked
    against the OpenAPI description (tests/conformance.py); ``check_schema = False`` opts out."""

    check_schema = True

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        if self.check_schema and hasattr(response, "_content"):
            found = response_problems(response)
            if found and not self._scripted_garbage(found):
                raise_problems(found)
        return response

    def _scripted_garbage(self, found: list[str]) -> bool:
        """A scenario fault (malformed or truncated JSON) is allowed to break the body."""
        journal = list(self.app.state.emulator.journal)  # type: ignore[attr-defined]
        scripted = bool(journal) and journal[-1].get("rule") is not None
        return scripted and all("body is not JSON" in p for p in found)

    def create(self, key: str = KEY, **body: Any):
        body.setdefault("model", "cogview-4")
        body.setdefault("prompt", "a red fox in the snow")
        return self.post(
            "/api/v1/images/generations", json=body, headers={"Authorization": f"Bearer {key}"}
        )

    def poll(self, task_id: str, key: str = KEY):
        return self.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})

    def advance(self, seconds: float) -> None:
        r = self.post("/_emulator/clock/advance", json={"seconds": seconds})
        assert r.status_code == 200, r.text

    def run_to_end(self, task_id: str, key: str = KEY) -> dict[str, Any]:
        self.advance(60)
        r = self.poll(task_id, key)
        assert r.status_code == 200, r.text
        return r.json()["data"]


def make_client(**config: Any) -> Client:
    config.setdefault("seed", 1)
    config.setdefault("clock", "virtual")
    config.setdefault("allowed_hosts", ("emulator.test",))  # the control API's host check
    return Client(create_app(Config(**config)), base_url="http://emulator.test")


@pytest.fixture
def client() -> Iterator[Client]:
    with make_client() as c:
        yield c
