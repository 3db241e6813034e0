"""Full cycles: N clients, each create -> poll until done -> download its own image.

The emulator runs as users start it (``python -m emulator serve --scenario instant --clock
real``), on every CPU; the load runs in a separate process (``cycle.py client ...``) pinned
to the last CPU, on raw asyncio streams with keep-alive connections (uvloop when installed),
so it costs little of the machine. Each cycle's image is new (its own task id in the label),
so every download is a first render. Alongside: the bare stack (``bare_app.py``) answering
the same sequence with stubs and a pre-rendered PNG of the same size, the ceiling; and one
client polling a finished task on an idle emulator, the p99 that per-request tails are
compared with.

    python benchmarks/cycle.py                       # 16 and 64 clients, 5 s each
    python benchmarks/cycle.py --root /work/main     # the same against another checkout

``make bench`` runs it (``bench.py`` calls :func:`cycle_benchmark`) and prints PASS/FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
KEY = "aio_cycle"
BODY = json.dumps({"model": "cogview-4", "prompt": "a cycle", "size": "1024*1024"}).encode()
KINDS = ("create", "poll", "download")
#: cycles/s at 64 clients of the emulator before issue #17 (85f32ae), in this harness on the
#: 2-core machine while other work used about 1.5 cores (the code after #17 measured 390 just
#: after it): the target is 2.5x it. ``bench.py --baseline-root DIR`` measures it in the run.
BASELINE_64 = 91.0


# --------------------------------------------------------------------------- the client


class Conn:
    """One keep-alive HTTP/1.1 connection; both servers always send Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(raw[9:12]), await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _cycles(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` concurrent cycles for ``seconds``; latencies per request kind."""
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    counts = {"cycles": 0, "errors": 0}
    deadline = time.perf_counter() + seconds
    prefix = f"http://127.0.0.1:{port}".encode()

    async def call(conn: Conn, kind: str, method: str, path: str, body: bytes = b"") -> bytes:
        started = time.perf_counter()
        status, data = await conn.request(method, path, body)
        latencies[kind].append(time.perf_counter() - started)
        if status != 200:
            counts["errors"] += 1
            raise ValueError(f"{method} {path}: {status} {data[:200]!r}")
        return data

    async def one(conn: Conn) -> None:
        while time.perf_counter() < deadline:
            created = await call(conn, "create", "POST", "/api/v1/images/generations", BODY)
            task_id = json.loads(created)["data"]["task_id"]
            while True:
                data = json.loads(await call(conn, "poll", "GET", f"/api/v1/tasks/{task_id}"))
                if data["data"]["status"] in ("completed", "failed"):
                    break
            url = data["data"]["output"]["image_url"].encode()
            path = url[len(prefix) :] if url.startswith(prefix) else b"/" + url.split(b"/", 3)[3]
            png = await call(conn, "download", "GET", path.decode())
            if png[:4] != b"\x89PNG":
                counts["errors"] += 1
            counts["cycles"] += 1

    conns = [Conn(port) for _ in range(clients)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)
    wall = time.perf_counter() - started
    for conn in conns:
        conn.close()
    failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return {
        "clients": clients,
        "wall_s": wall,
        "cycles": counts["cycles"],
        "cycles_per_s": counts["cycles"] / wall,
        "errors": counts["errors"] + len(failures),
        "error_samples": failures[:3],
        "latency_ms": {kind: _percentiles(values) for kind, values in latencies.items()},
        "all_p99_ms": _percentiles([v for vs in latencies.values() for v in vs])["p99"],
    }


async def _idle_polls(port: int, seconds: float) -> dict[str, Any]:
    """One client polling one finished task, one request at a time."""
    conn = Conn(port)
    created = json.loads((await conn.request("POST", "/api/v1/images/generations", BODY))[1])
    path = f"/api/v1/tasks/{created['data']['task_id']}"
    await conn.request("GET", path)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await conn.request("GET", path)
        samples.append(time.perf_counter() - started)
    conn.close()
    return _percentiles(samples)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p99": 0.0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def client_main(argv: list[str]) -> int:
    """``cycle.py client --port P --clients N --seconds S [--idle]``: one JSON line out."""
    parser = argparse.ArgumentParser(prog="cycle.py client")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", action="store_true", help="one client polling, one at a time")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    run = _idle_polls(args.port, args.seconds) if args.idle else None
    result = asyncio.run(run or _cycles(args.port, args.clients, args.seconds))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {**result, "client_cpu_s": usage.ru_utime + usage.ru_stime}
    print("JSON " + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the driver


def _start(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"^READY (\d+)|listening on http://127\.0\.0\.1:(\d+)", line)
    if found is None:
        proc.kill()
        raise RuntimeError(f"{cmd} did not start: {line!r} {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    return proc, int(found.group(1) or found.group(2))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _client(port: int, clients: int, seconds: float, *, idle: bool = False) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cpus[-1])] if len(cpus) > 1 else []
    cmd = [*pin, sys.executable, __file__, "client", "--port", str(port)]
    cmd += ["--clients", str(clients), "--seconds", str(seconds), *(["--idle"] if idle else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"the cycle client failed: {out.stdout[-500:]} {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line[5:])
    result["client_cores"] = result["client_cpu_s"] / max(seconds, 1e-9)
    return result


def emulator_command(python: str) -> list[str]:
    return [python, "-m", "emulator", "serve", "--port", "0", "--seed", "1", "--clock", "real",
            "--scenario", "instant", "--default-credits", str(10**12)]  # fmt: skip


def reference_png(python: str = sys.executable, cwd: Path = ROOT) -> bytes:
    """A 1024x1024 placeholder, rendered once: what the bare app serves."""
    code = (
        "import sys\nfrom emulator.images import Placeholder, render_png\n"
        "sys.stdout.buffer.write(render_png(Placeholder(1024, 1024, 1, 'cogview-4', "
        "'a cycle', 'n17a1b2c3d4e5f60718_cogview4'), max_pixels=10**8))\n"
    )
    return subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, check=True).stdout


def cycle_benchmark(
    clients: list[int], seconds: float, tmp: Path, root: Path = ROOT, python: str | None = None
) -> dict[str, Any]:
    """The emulator (from ``root``) and the bare stack, each at every client count, after a
    1 s warm-up; then the idle-poll p99 of the emulator."""
    python = python or sys.executable
    png = tmp / "cycle.png"
    png.write_bytes(reference_png())
    bare_cmd = [sys.executable, str(BENCH_DIR / "serve_target.py"), "bare", "0", "--png", str(png)]
    out: dict[str, Any] = {"clients": clients, "seconds": seconds, "root": str(root)}
    for name, cmd, cwd in (("emulator", emulator_command(python), root),
                           ("bare", bare_cmd, BENCH_DIR)):  # fmt: skip
        proc, port = _start(cmd, cwd)
        try:
            _client(port, max(clients), 1.0)  # warm-up: the render pool starts here
            out[name] = {str(n): _client(port, n, seconds) for n in clients}
            if name == "emulator":
                out["idle_poll_ms"] = _client(port, 1, min(seconds, 3.0), idle=True)
        finally:
            _stop(proc)
    return out


def print_cycles(result: dict[str, Any]) -> None:
    print(
        f"\n== Full cycles (create -> poll until done -> download its own new image), "
        f"{result['seconds']:.0f} s each; the client runs in its own process on the last CPU =="
    )
    print(
        f"{'server':<10}{'clients':>8}{'cycles/s':>10}{'errors':>8}"
        + "".join(f"{k + ' p50/p99 ms':>24}" for k in KINDS)
        + f"{'client CPU':>12}"
    )
    for name in ("emulator", "bare"):
        for n, r in result[name].items():
            cells = "".join(
                f"{r['latency_ms'][k]['p50']:>13.2f} /{r['latency_ms'][k]['p99']:>8.2f}"
                for k in KINDS
            )
            print(
                f"{name:<10}{n:>8}{r['cycles_per_s']:>10,.0f}{r['errors']:>8}{cells}"
                f"{r['client_cores']:>10.2f} c"
            )
    idle = result["idle_poll_ms"]
    print(
        f"idle emulator, one client polling: p50 {idle['p50']:.2f} ms, p99 {idle['p99']:.2f} ms. "
        "client CPU: cores the load process used (1.0 = its CPU was saturated)."
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to run the emulator from")
    parser.add_argument("--python", help="its interpreter (default: ROOT/.venv/bin/python)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    python = args.python or str(args.root / ".venv" / "bin" / "python")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="aio-cycle-") as tmp:
        result = cycle_benchmark(args.clients, args.seconds, Path(tmp), args.root, python)
    print_cycles(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
