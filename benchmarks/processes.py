"""The processes of a benchmark: stopping the servers it started (``bench.py``,
``render_load.py``), the memory a server and its render processes hold (``bench.py``,
``soak.py``) and pinning a renderer benchmark to one CPU (``render_*.py``)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it hangs past ``timeout`` seconds;
    its pipes closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def pin(cpu: int | None) -> str:
    """Pin this process to one CPU (the last one it may use unless told), as a server's render
    worker would run; say which."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    cpus = sorted(os.sched_getaffinity(0))
    chosen = cpus[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen} of {cpus}"


def memory_mib(pid: int) -> float:
    """What a server holds in memory: its resident memory (VmRSS) plus the proportional share
    (Pss) of every process below it (the fork server and the workers ``emulator.media`` renders
    videos and audio in), so that memory held by a worker is counted too and pages the workers
    share are counted once. Linux's /proc only."""
    total = _status_kib(pid)
    for child in _descendants(pid):
        total += _pss_kib(child)
    return total / 1024


def _status_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # it ended meanwhile
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for thread in threads:
            try:
                with open(f"/proc/{parent}/task/{thread}/children") as fh:
                    children = [int(c) for c in fh.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found
