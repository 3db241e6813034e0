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


def test_fault_soak_keeps_health_fast_loses_nothing_and_bounds_descriptors() -> None:
    """200 slow clients, 1,000 callbacks to a receiver that never answers and 200 creates,
    for 8 s (benchmarks/soak.py --faults, shortened). Every health probe must answer; 2% may
    take over 50 ms (never over 1 s), since the machine running the tests is shared (the
    full run, ``soak.py --faults``, allows none)."""
    soak = _soak_module()
    result = asyncio.run(
        soak.fault_soak(slow_clients=200, callbacks=1000, cycles=200, seconds=8, progress=False)
    )
    assert result.slow_connections >= 200 and result.callbacks == 1000
    assert result.receiver_connections >= 64  # deliveries did reach the silent receiver
    assert result.webhooks["running"] <= 64  # the rest wait their turn
    assert result.problems(probe_limit_ms=50.0, max_fds=200 + 64 + 64, tolerance=0.02) == []


def test_a_servers_memory_counts_what_its_worker_processes_hold() -> None:
    """Videos and audio render in worker processes: the memory the benchmarks report for a
    server (``processes.memory_mib``) includes what its children hold, not only its VmRSS."""
    import os
    import signal
    import subprocess
    import time

    soak = _soak_module()
    child = "data = b'x' * 64_000_000; import time; time.sleep(60)"  # 61 MiB, every page touched
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               f"{child!r}])"],
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while soak.rss_mib(parent.pid) < _own_rss_mib(parent.pid) + 55:
            assert time.monotonic() < deadline, "the child's 61 MiB were never counted"
            time.sleep(0.1)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _own_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_the_expiry_report_sees_what_the_journal_keeps_after_every_task_expired() -> None:
    """``memory.py --expiry``: after expiry, the emulator whose journal keeps its entries holds
    more live memory than the one whose journal keeps one (1,500 cycles: 3,150 entries of
    about 370 B), and the report's figures are read off the allocator, not made up."""
    import subprocess

    script = SOAK.parent / "memory.py"
    out = subprocess.run(
        [sys.executable, str(script), "--expiry", "--tasks", "1500", "--download-every", "10"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    rows = {}
    for line in out.splitlines()[2:]:  # e.g. "journal 1   after expiry   49.0   22.0   13.2"
        *words, rss, arenas, live = line.split()
        rows[" ".join(words)] = (float(rss), float(arenas), float(live))
    kept = rows["journal 10,000 after expiry"]
    one = rows["journal 1 after expiry"]
    assert kept[2] - one[2] >= 0.5, out
    for journal in ("journal 10,000", "journal 1"):
        warm, cycles = rows[f"{journal} warm"], rows[f"{journal} after cycles"]
        assert warm[1] >= 1 and warm[2] > 1, out  # arenas and live bytes were read
        assert cycles[2] > warm[2], out  # 1,500 tasks held: more live objects than warm
