"""Shared fixtures: the app in-process on a virtual clock, driven through Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.config import Config

KEY = "aio_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Client(TestClient):
    """TestClient with the emulator's verbs spelled out."""

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
    return Client(create_app(Config(**config)), base_url="http://emulator.test")


@pytest.fixture
def client() -> Iterator[Client]:
    with make_client() as c:
        yield c
