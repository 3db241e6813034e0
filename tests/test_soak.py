"""The CI-sized soak: benchmarks/soak.py at a few thousand tasks against a real server process."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_soak_has_no_errors_loses_no_task_and_keeps_memory_bounded() -> None:
    soak = _soak_module()
    result = asyncio.run(
        soak.soak(tasks=1500, clients=16, max_seconds=20, ttl=1.5, download_every=3, progress=False)
    )
    assert result.errors == 0, result.error_samples
    assert result.created == result.terminal == 1500
    assert result.downloads == 500
    assert result.balances_ok
    assert result.tasks_left_after_expiry == 0
    assert result.problems(rss_slack_mib=48.0) == []
    assert result.rss_expired_mib <= result.rss_peak_mib + 1
