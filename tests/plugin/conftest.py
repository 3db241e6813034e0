"""Helpers for testing the plugin with pytester (enabled by ``pytest_plugins`` in each module:
a non-root conftest may not declare it).

The heavy modules are imported here, once: pytester's in-process runs forget the modules they
import, and would otherwise import them again for every run. Inner runs skip the hypothesis
plugin, whose lazy import (assertion-rewritten, with no bytecode cache) costs seconds per run.
"""

from __future__ import annotations

import concurrent.futures.process  # (video and audio renders: a process pool, see media.py)
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import multiprocessing.synchronize

import httpx
import openai  # (tests/plugin/test_chat.py: its inner runs use the SDK)
import pytest
import respx

import emulator.app
import emulator.images
import emulator.server

__all__ = ["concurrent", "emulator", "httpx", "multiprocessing", "openai", "respx"]

INI = """\
[pytest]
addopts = -p no:cacheprovider -p no:hypothesispytest --strict-markers
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten; emulator:pytest.PytestAssertRewriteWarning
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose inner runs are as strict as ours (warnings are errors). The emulator
    package itself is imported by the outer session, so an inner run cannot assertion-rewrite
    it (pytest warns when an editable install maps the package to the plugin)."""
    pytester.makeini(INI)
    return pytester
