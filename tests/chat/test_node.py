"""The official openai npm package makes the same calls from Node against a live emulator.

Its package is installed from tests/node/package-lock.json on first use (``npm ci``; ``make
test`` does it beforehand). Without node or npm the test skips, except under CI=true, where it
fails: CI must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

NODE_DIR = Path(__file__).parent.parent / "node"
KEY = "aio_node"


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the Node test (install Node 20 and npm)")
    pytest.skip(f"{reason}: install Node 20 and npm to run the openai npm package test")


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node or npm is not on PATH")
    assert node is not None and npm is not None
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return node


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(create_app(Config(seed=5, clock="virtual", scenario="instant"))) as server:
        yield server


def test_the_openai_npm_package_streams_and_not(node: str, live: LiveServer) -> None:
    env = {**os.environ, "EMULATOR_URL": live.url, "API_KEY": KEY}
    done = subprocess.run(
        [node, "chat.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "capital of Norway" in result["content"]
    assert result["streamed"] == result["content"]
    assert result["streamedUsage"] == result["usage"] and result["credits"] == 1
    assert result["error"] == {
        "name": "BadRequestError",
        "status": 400,
        "message": "messages: expected a non-empty list of messages, got an empty list",
    }


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        pytest.param("true", pytest.fail.Exception, id="ci-fails"),
        pytest.param("", pytest.skip.Exception, id="skips"),
    ],
)
def test_without_node_it_skips_except_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="install Node 20 and npm"):
        _missing("node or npm is not on PATH")
