"""The version the emulator reports (health, --version, webhooks' User-Agent) is the package's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import emulator


def test_the_reported_version_is_the_package_version() -> None:
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert emulator.__version__ == pyproject["project"]["version"]
