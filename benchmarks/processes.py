"""The processes of a benchmark: stopping the servers it started (``bench.py``,
``render_load.py``) and pinning a renderer benchmark to one CPU (``render_*.py``)."""

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
