"""Benchmark of the emulator against the ceiling of its stack, in one run on this machine.

1. HTTP load (wrk, 1 thread, 16 connections): create, poll and cached image download on the
   emulator vs a bare Starlette app (``bare_app.py``) on the same uvicorn settings. Servers are
   pinned to one CPU, wrk and this script to another. Rounds are interleaved (emulator, bare,
   bare, emulator, ...) so drift hits both sides alike; medians over rounds, ratios as medians
   of per-round ratios, plus the server's CPU time per request.
2. Placeholder render time per image size, vs Pillow encoding a flat RGB image.
3. Start-up: ``Popen`` to the first 200 of ``GET /_emulator/health``.
4. Resident memory of the servers after the load.
5. Full cycles (``cycle.py``): 16 and 64 clients each create -> poll -> download a new image,
   against the bare stack serving a pre-rendered PNG of the same size.
6. Videos and speech (issue 13): video create and poll under wrk like the image ones (shorter
   runs); first render of a 5 s 1280x720 MP4 and of a 30 s speech MP3 on one core; poll
   latency while 8 first downloads of 1080p videos render (``render_load.py``), server on CPU 0
   and unpinned.

Prints a table and the targets with PASS/FAIL and writes ``benchmarks/results/latest.json``.
Exit code 0 even if a target fails; non-zero only if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cycle
import render_load
from processes import memory_mib, stop_process
from workloads import (
    CHAT_BODY,
    CHAT_MESSAGES,
    CHAT_PATH,
    CREATE_BODY,
    CREATE_PATH,
    VIDEO_BODY,
    VIDEO_PATH,
)

BENCH_DIR = Path(__file__).resolve().parent
# the in-process renders use the checkout this script belongs to, not an installed copy (the
# servers run ``python -m emulator`` from the current directory, the checkout under make)
sys.path.insert(0, str(BENCH_DIR.parent))
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
SERVE_TARGET = BENCH_DIR / "serve_target.py"
BENCH_CREDITS = 10**12  # no create may run out of credits during the load
PYTHON = sys.executable
SERVER_CPU, LOAD_CPU = 0, 1
KEY_HEADERS = {"Authorization": "Bearer aio_bench"}
JSON_HEADERS = {**KEY_HEADERS, "Content-Type": "application/json"}
#: seconds per wrk run of the video workloads (at most --duration): they keep make bench short
VIDEO_SECONDS = 3
#: throughput floors against bare where they are not 1.0: creates (issue 17), a non-streamed
#: chat completion (issue 14)
THROUGHPUT_FLOORS = {"create": 0.8, "chat": 0.7}
#: throughput floor and p99 ceiling of the video workloads against bare (issue 13)
VIDEO_FLOOR, VIDEO_P99 = 0.7, 2.0
#: a streamed answer of about 200 tokens: a JSON array of 100 "token" strings (801 characters)
CHAT_STREAM_FIELDS = {
    "messages": CHAT_MESSAGES,
    "model": "gemini",
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "words",
            "schema": {
                "type": "array",
                "items": {"const": "token"},
                "minItems": 100,
                "maxItems": 100,
            },
        },
    },
}
RENDER_SIZES: list[tuple[int, int, str]] = [
    (1024, 1024, "cogview-4"),
    (768, 1344, "cogview-4"),
    (864, 1152, "cogview-4"),
    (1344, 768, "cogview-4"),
    (1152, 864, "cogview-4"),
    (1440, 720, "cogview-4"),
    (720, 1440, "cogview-4"),
    (2048, 2048, "flux-2"),
    (3136, 1344, "flux-2"),
]
FLAT_RGB = (96, 140, 200)
#: limits of the first render of a 5 s 1280x720 MP4 and of a 30 s speech MP3 (issue 13)
MP4_TARGET_MS, MP3_TARGET_MS = 250.0, 50.0
MP4_PROMPT = json.loads(VIDEO_BODY)["prompt"]
WARMUP_S = 1
STARTUP_TIMEOUT_S = 15.0
FOREIGN_LOAD_LIMIT = 0.1  # cores used by other processes before the run is flagged as noisy

LUA_HOOKS = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
    '"non2xx":%d,"socket_errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
"""


class BenchError(RuntimeError):
    """The benchmark itself cannot run (not a failed target)."""


# --------------------------------------------------------------------------- processes


@dataclass
class Pinning:
    """Command prefixes that pin servers and the load generator to separate CPUs."""

    server: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)
    note: str = "not pinned"

    @classmethod
    def detect(cls) -> Pinning:
        cpus = os.sched_getaffinity(0)
        if shutil.which("taskset") is None or not {SERVER_CPU, LOAD_CPU} <= cpus:
            return cls(note=f"not pinned (CPUs available: {sorted(cpus)})")
        os.sched_setaffinity(0, {LOAD_CPU})  # this script, and wrk, stay off the server's CPU
        return cls(
            server=["taskset", "-c", str(SERVER_CPU)],
            load=["taskset", "-c", str(LOAD_CPU)],
            note=f"server on CPU {SERVER_CPU}, wrk and driver on CPU {LOAD_CPU}",
        )


@dataclass
class Server:
    """A benchmark target running in its own process."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def rss_mib(self) -> float:
        """Its resident memory with its render processes' share (``processes.memory_mib``)."""
        return memory_mib(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc)


def start_server(name: str, target: str, pin: Pinning, *extra: str) -> Server:
    """Start a target: the emulator as its users do (``python -m emulator serve``, on the real
    or the virtual clock), the bare app with ``serve_target.py``; wait for the line giving the
    port."""
    if target.startswith("emulator"):
        clock = "virtual" if target == "emulator-virtual" else "real"
        # instant tasks: they end as they are made, so the store fills to its cap and forgets
        # finished ones (a store full of live tasks refuses creates: it never forgets one)
        args = ["-m", "emulator", "serve", "--port", "0", "--seed", "1", "--clock", clock,
                "--scenario", "instant", "--default-credits", str(BENCH_CREDITS)]  # fmt: skip
    else:
        args = [str(SERVE_TARGET), target, "0", *extra]
    proc = subprocess.Popen([*pin.server, PYTHON, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(STARTUP_TIMEOUT_S)
    line = proc.stdout.readline().decode() if ready else ""
    port = re.search(r"^READY (\d+)|listening on http://127\.0\.0\.1:(\d+)", line)
    if port is None:
        stop_process(proc)
        err = proc.stderr.read().decode() if proc.stderr and not proc.stderr.closed else ""
        raise BenchError(f"{name} did not start: {line!r} {err[-2000:]}")
    return Server(name, proc, int(port.group(1) or port.group(2)))


def request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:port; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def request_json(port: int, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A request with the bench key; the JSON answer, or BenchError on a non-200."""
    text = None if body is None else json.dumps(body)
    status, raw = request(port, method, path, text, JSON_HEADERS if text else KEY_HEADERS)
    if status != 200:
        raise BenchError(f"{method} {path} answered {status}: {raw[:500]!r}")
    return json.loads(raw)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a live process has used."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time that processes other than this benchmark use while it runs: on a 2-core machine
    they share a CPU with the pinned server or wrk, so the figures are unreliable when it is high.

    Ours: this process, its reaped children (wrk, finished servers) and the live ``pids``.
    """

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        """(wall, machine user+nice+system, our CPU, steal), in seconds."""
        hz = os.sysconf("SC_CLK_TCK")
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        ours += sum(proc_cpu_s(pid) for pid in self.pids)
        return time.monotonic(), sum(fields[:3]) / hz, ours, fields[7] / hz

    def report(self) -> dict[str, float]:
        """Average foreign and steal CPU, in cores, since the start."""
        end = self._sample()
        wall = end[0] - self.start[0]
        foreign = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return {
            "wall_s": wall,
            "foreign_cores": max(0.0, foreign / wall),
            "steal_cores": (end[3] - self.start[3]) / wall,
        }


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    """Path of wrk, installing the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get ...", flush=True)
    apt = shutil.which("apt-get")
    if apt:
        for cmd in ([apt, "update"], [apt, "install", "-y", "wrk"]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    found = shutil.which("wrk")
    if not found:
        raise BenchError(
            "wrk is required and could not be installed (apt-get missing or not root). "
            "Install it with: sudo apt-get install wrk"
        )
    return found


@dataclass(frozen=True)
class Endpoint:
    """What one wrk run sends."""

    method: str
    path: str
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def lua(self) -> str:
        lines = [f'wrk.method = "{self.method}"']
        if self.body is not None:
            lines.append(f"wrk.body = [==[{self.body}]==]")
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in self.headers.items()]
        return "\n".join(lines) + "\n" + LUA_HOOKS


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = 0.0  # server CPU time per request (robust to other load on the machine)
    foreign_cores: float = 0.0  # CPU other processes used during the run


def run_wrk(
    wrk: str,
    pin: Pinning,
    port: int,
    ep: Endpoint,
    seconds: int,
    conns: int,
    tmp: Path,
    pids: Sequence[int] = (),
    server_pid: int | None = None,
) -> WrkResult:
    """One wrk run (1 thread) against ``ep``; parses the JSON line of the ``done`` hook."""
    script = tmp / f"{ep.method}-{abs(hash(ep.path))}.lua"
    script.write_text(ep.lua())
    url = f"http://127.0.0.1:{port}{ep.path}"
    cmd = [*pin.load, wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(script), url]
    meter = CpuMeter(pids)
    cpu_before = proc_cpu_s(server_pid) if server_pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-1000:]} {out.stderr}")
    data = json.loads(line[5:])
    cpu = proc_cpu_s(server_pid) - cpu_before if server_pid else 0.0
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=data["non2xx"] + data["socket_errors"],
        cpu_us=cpu / max(1, data["requests"]) * 1e6,
        foreign_cores=meter.report()["foreign_cores"],
    )


# --------------------------------------------------------------------------- HTTP load


@dataclass
class Pair:
    """One workload run on the emulator and on the bare app."""

    name: str
    emulator: tuple[Server, Endpoint]
    bare: tuple[Server, Endpoint]
    seconds: int | None = None  # per wrk run; None: --duration
    runs: dict[str, list[WrkResult]] = field(default_factory=lambda: {"emulator": [], "bare": []})


def prepare_poll_task(server: Server) -> dict[str, Any]:
    """Create a task on the virtual-clock emulator, finish it, and download its image twice."""
    created = request_json(server.port, "POST", CREATE_PATH, json.loads(CREATE_BODY))
    task_id = created["data"]["task_id"]
    request_json(server.port, "POST", "/_emulator/clock/advance", {"seconds": 60})
    task = request_json(server.port, "GET", f"/api/v1/tasks/{task_id}")["data"]
    if task["status"] != "completed" or not task["output"]:
        raise BenchError(f"task {task_id} did not complete: {task}")
    image_path = "/" + task["output"]["image_url"].split("/", 3)[3]
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        status, png = request(server.port, "GET", image_path)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200 or not png.startswith(b"\x89PNG"):
            raise BenchError(f"GET {image_path} answered {status}")
    return {
        "task_id": task_id,
        "image_path": image_path,
        "png": png,
        "first_download_ms": timings[0],
        "second_download_ms": timings[1],
    }


def prepare_video_task(server: Server) -> str:
    """A completed kling-3 task on the virtual-clock emulator (its video is never rendered:
    the poll workload reads the task, not the file)."""
    created = request_json(server.port, "POST", VIDEO_PATH, json.loads(VIDEO_BODY))
    task_id = created["data"]["task_id"]
    request_json(server.port, "POST", "/_emulator/clock/advance", {"seconds": 600})
    task = request_json(server.port, "GET", f"/api/v1/tasks/{task_id}")["data"]
    if task["status"] != "completed" or not task["output"].get("video_url"):
        raise BenchError(f"video task {task_id} did not complete: {task}")
    return task_id


def run_pairs(
    pairs: Sequence[Pair],
    wrk: str,
    pin: Pinning,
    args: argparse.Namespace,
    tmp: Path,
    pids: Sequence[int],
) -> None:
    """Warm up every side once, then interleave rounds; results land in ``pair.runs``."""
    sides = ("emulator", "bare")
    for pair in pairs:
        for side in sides:
            server, ep = getattr(pair, side)
            run_wrk(wrk, pin, server.port, ep, WARMUP_S, args.connections, tmp)
    for rnd in range(args.rounds):
        order = sides if rnd % 2 == 0 else sides[::-1]
        for pair in pairs:
            for side in order:
                server, ep = getattr(pair, side)
                res = run_wrk(
                    wrk,
                    pin,
                    server.port,
                    ep,
                    pair.seconds or args.duration,
                    args.connections,
                    tmp,
                    pids,
                    server.proc.pid,
                )
                pair.runs[side].append(res)
                flag = f"  {res.errors} ERRORS" if res.errors else ""
                if res.foreign_cores > FOREIGN_LOAD_LIMIT:
                    flag += f"  (noisy: {res.foreign_cores:.2f} cores busy elsewhere)"
                print(
                    f"  round {rnd + 1}/{args.rounds}  {pair.name:<12} {side:<8} "
                    f"{res.rps:>9,.0f} req/s  p50 {res.p50_ms:6.2f} ms  "
                    f"p99 {res.p99_ms:6.2f} ms  server CPU {res.cpu_us:4.0f} us/req{flag}",
                    flush=True,
                )


def summarise(runs: list[WrkResult]) -> dict[str, Any]:
    """Medians over rounds, plus the total error count."""
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "cpu_us": statistics.median(r.cpu_us for r in runs),
        "requests": sum(r.requests for r in runs),
        "errors": sum(r.errors for r in runs),
        "foreign_cores_max": max(r.foreign_cores for r in runs),
        "rounds": [asdict(r) for r in runs],
    }


def paired_ratios(pair: Pair) -> dict[str, float]:
    """Emulator/bare ratios: the median over rounds of each round's ratio (the two runs of a
    round are adjacent in time, so machine drift cancels out better than in a ratio of medians).
    """
    rounds = list(zip(pair.runs["emulator"], pair.runs["bare"], strict=True))
    return {
        "rps": statistics.median(_ratio(e.rps, b.rps) for e, b in rounds),
        "p99": statistics.median(_ratio(e.p99_ms, b.p99_ms) for e, b in rounds),
        "cpu": statistics.median(_ratio(e.cpu_us, b.cpu_us) for e, b in rounds),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def load_benchmark(wrk: str, pin: Pinning, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the three servers, run create/poll/download on both sides, measure memory."""
    servers: list[Server] = []
    try:
        real = start_server("emulator (real clock)", "emulator", pin)
        servers.append(real)
        virtual = start_server("emulator (virtual clock)", "emulator-virtual", pin)
        servers.append(virtual)
        prepared = prepare_poll_task(virtual)
        prepared["video_task_id"] = prepare_video_task(virtual)
        png_file = tmp / "image.png"
        png_file.write_bytes(prepared.pop("png"))
        bare = start_server("bare Starlette", "bare", pin, "--png", str(png_file))
        servers.append(bare)
        pairs = make_pairs(real, virtual, bare, prepared, min(args.duration, VIDEO_SECONDS))
        print(f"HTTP load: {len(pairs)} workloads x 2 servers x {args.rounds} rounds", flush=True)
        run_pairs(pairs, wrk, pin, args, tmp, [s.proc.pid for s in servers])
        print("chat stream time to first byte ...", flush=True)
        chat_stream = chat_stream_benchmark(virtual, 20 if args.quick else 200)
        memory = {s.name: s.rss_mib() for s in servers}
        state = request_json(real.port, "GET", "/_emulator/health")
    finally:
        for server in servers:
            server.stop()
    return {
        "workloads": {
            p.name: {side: summarise(runs) for side, runs in p.runs.items()} for p in pairs
        },
        "ratios": {p.name: paired_ratios(p) for p in pairs},
        "seconds": {p.name: p.seconds or args.duration for p in pairs},
        "png_bytes": png_file.stat().st_size,
        "first_download_ms": prepared["first_download_ms"],
        "second_download_ms": prepared["second_download_ms"],
        "rss_mib": memory,
        "emulator_after_load": {"tasks": state["tasks"], "journal": state["journal"]},
        "chat_stream": chat_stream,
    }


def make_pairs(
    real: Server, virtual: Server, bare: Server, prepared: dict[str, Any], video_seconds: int
) -> list[Pair]:
    """The workloads: creates on the real clock, polls, download and chat on the virtual one;
    the video ones with shorter runs."""
    create = Endpoint("POST", CREATE_PATH, CREATE_BODY, JSON_HEADERS)
    poll = Endpoint("GET", f"/api/v1/tasks/{prepared['task_id']}", None, KEY_HEADERS)
    download = Endpoint("GET", prepared["image_path"])
    chat = Endpoint("POST", CHAT_PATH, CHAT_BODY, JSON_HEADERS)
    video_create = Endpoint("POST", VIDEO_PATH, VIDEO_BODY, JSON_HEADERS)
    video_poll = Endpoint("GET", f"/api/v1/tasks/{prepared['video_task_id']}", None, KEY_HEADERS)
    return [
        Pair("create", (real, create), (bare, create)),
        Pair("poll", (virtual, poll), (bare, poll)),
        Pair("download", (virtual, download), (bare, download)),
        Pair("chat", (virtual, chat), (bare, chat)),
        Pair("video-create", (real, video_create), (bare, video_create), video_seconds),
        Pair("video-poll", (virtual, video_poll), (bare, video_poll), video_seconds),
    ]


def chat_stream_benchmark(server: Server, repeats: int) -> dict[str, Any]:
    """Time to the first body byte of a ~200-token stream against the latency of the whole
    non-streamed answer to the same request (one keep-alive connection, medians)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    def timed(stream: bool) -> tuple[float, bytes]:
        body = json.dumps({**CHAT_STREAM_FIELDS, "stream": stream})
        started = time.perf_counter()
        conn.request("POST", CHAT_PATH, body, JSON_HEADERS)
        response = conn.getresponse()
        first = response.read1(65536) if stream else response.read()
        elapsed = time.perf_counter() - started
        rest = response.read()
        if response.status != 200:
            raise BenchError(f"POST {CHAT_PATH} answered {response.status}: {first[:200]!r}")
        return elapsed, first + rest

    try:
        _, whole = timed(False)
        tokens = json.loads(whole)["usage"]["completion_tokens"]
        _, events = timed(True)
        chunks = events.count(b"data: ") - 1  # without [DONE]
        whole_ms, ttfb_ms = [], []
        for _ in range(repeats):
            whole_ms.append(timed(False)[0] * 1000)
            ttfb_ms.append(timed(True)[0] * 1000)
    finally:
        conn.close()
    whole_median, ttfb_median = statistics.median(whole_ms), statistics.median(ttfb_ms)
    return {
        "completion_tokens": tokens,
        "chunks": chunks,
        "whole_ms": whole_median,
        "ttfb_ms": ttfb_median,
        "ratio": _ratio(ttfb_median, whole_median),
    }


# --------------------------------------------------------------------------- start-up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_ok(port: int) -> bool:
    """True once GET /_emulator/health answers 200; False while the port refuses."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=STARTUP_TIMEOUT_S) as sock:
            sock.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = sock.recv(64)
    except (ConnectionRefusedError, ConnectionResetError):
        return False
    return head.startswith(b"HTTP/1.1 200")


def time_startup(cmd: list[str], port: int) -> float:
    """Seconds from Popen to the first 200 of the health route (tight connect loop)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not health_ok(port):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise BenchError(f"{cmd} exited with {proc.returncode}: {err[-2000:]}")
            if time.perf_counter() - started > STARTUP_TIMEOUT_S:
                raise BenchError(f"{cmd} did not answer within {STARTUP_TIMEOUT_S} s")
        return time.perf_counter() - started
    finally:
        stop_process(proc)


def startup_benchmark(pin: Pinning, repeats: int) -> dict[str, Any]:
    """Median start-up of the emulator CLI and of the bare app, alternating runs."""
    commands: dict[str, Callable[[int], list[str]]] = {
        "emulator": lambda p: [PYTHON, "-m", "emulator", "serve", "--port", str(p)],
        "bare": lambda p: [PYTHON, str(SERVE_TARGET), "bare", str(p)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, make in commands.items():
            port = free_port()
            times[name].append(time_startup([*pin.server, *make(port)], port))
    return {name: {"median_s": statistics.median(ts), "runs_s": ts} for name, ts in times.items()}


# --------------------------------------------------------------------------- rendering


def median_ms(fn: Callable[[int], object], repeats: int) -> float:
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def render_benchmark(repeats: int) -> dict[str, Any]:
    """Median render time per size, and 1440x720 against Pillow encoding a flat RGB image."""
    try:
        from PIL import Image

        from emulator.catalogue import Catalogue
        from emulator.images import Placeholder, render_png
    except ImportError as exc:
        return {"skipped": f"cannot import the renderer: {exc}"}
    max_pixels = Catalogue.load().max_pixels
    prompt = json.loads(CREATE_BODY)["prompt"]

    def render(w: int, h: int, model: str, i: int) -> bytes:
        task_id = f"n17{i:016x}_bench"
        return render_png(Placeholder(w, h, i, model, prompt, task_id), max_pixels=max_pixels)

    def flat(_: int) -> None:
        Image.new("RGB", (1440, 720), FLAT_RGB).save(io.BytesIO(), "PNG")

    started = time.perf_counter()
    render(1440, 720, "cogview-4", 10**6)  # first call in the process: fonts load here
    cold_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    render(1024, 1024, "cogview-4", 10**6)  # first of a size: its font sizes load, glyphs drawn
    cold_size_ms = (time.perf_counter() - started) * 1000
    sizes = {}
    for w, h, model in RENDER_SIZES:
        ms = median_ms(lambda i, w=w, h=h, m=model: render(w, h, m, i), repeats)
        sizes[f"{w}x{h}"] = {"model": model, "ms": ms, "bytes": len(render(w, h, model, 0))}
    flat_ms = median_ms(flat, repeats)
    return {
        "sizes": sizes,
        "first_call_ms": cold_ms,
        "first_of_a_size_ms": cold_size_ms,
        "flat_rgb_1440x720_ms": flat_ms,
        "ratio_1440x720": sizes["1440x720"]["ms"] / flat_ms,
    }


def timed_ms(fn: Callable[[int], bytes], repeats: int, first: int = 0) -> dict[str, Any]:
    """Median wall and CPU milliseconds of fn(first), fn(first + 1)... (the CPU time is this
    process's: the encoders run on the calling thread), and the size of the last body."""
    wall, cpu, size = [], [], 0
    for i in range(first, first + repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        size = len(fn(i))
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {
        "ms": statistics.median(wall),
        "cpu_ms": statistics.median(cpu),
        "fastest_ms": min(wall),
        "slowest_ms": max(wall),
        "bytes": size,
        "renders": repeats,
    }


def media_render_benchmark(repeats: int) -> dict[str, Any]:
    """First renders of a 5 s 1280x720 placeholder MP4 and of a 30 s speech MP3: each with its
    own seed and task id (nothing cached), on this process's CPU (one core when pinned). The
    first call in the process (PyAV imported, fonts loaded) is timed apart."""
    out: dict[str, Any] = {"cpus": sorted(os.sched_getaffinity(0))}
    try:
        from emulator.video import VideoPlaceholder, render_mp4
    except ImportError as exc:
        out["video"] = {"skipped": f"cannot import emulator.video: {exc}"}
    else:

        def mp4(i: int) -> bytes:
            task_id = f"n75{i:016x}_kling3"
            return render_mp4(
                VideoPlaceholder(1280, 720, 5, 2000 + i, "kling-3", MP4_PROMPT, task_id)
            )

        out["video"] = {
            "first_call_ms": timed_ms(mp4, 1, 10**6)["ms"],
            **timed_ms(mp4, repeats),
        }
    try:
        from emulator.audio import AudioPlaceholder, render_mp3
    except ImportError as exc:
        out["audio"] = {
            "skipped": f"emulator/audio.py is not in this tree ({exc}): merge main once the MP3 "
            "renderer has landed"
        }
    else:

        def mp3(i: int) -> bytes:
            task_id = f"n76{i:016x}_speech"
            return render_mp3(AudioPlaceholder(30.0, 3000 + i, "speech", MP4_PROMPT, task_id))

        out["audio"] = {
            "first_call_ms": timed_ms(mp3, 1, 10**6)["ms"],
            **timed_ms(mp3, repeats),
        }
    return out


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    ok: bool | None  # None: invalid (errors during the run) or not measured

    @property
    def label(self) -> str:
        return {True: "PASS", False: "FAIL", None: "INVALID"}[self.ok]


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []
    for name, sides in results["load"]["workloads"].items():
        emu, bare = sides["emulator"], sides["bare"]
        clean = emu["errors"] == 0 and bare["errors"] == 0
        ratios = results["load"]["ratios"][name]
        rps_ratio, p99_ratio = ratios["rps"], ratios["p99"]
        floor, ceiling = THROUGHPUT_FLOORS.get(name, 1.0), 1.5
        if name.startswith("video-"):
            floor, ceiling = VIDEO_FLOOR, VIDEO_P99
        out.append(
            Verdict(
                f"{name} throughput >= {floor}x bare",
                f"{rps_ratio:.2f}x",
                clean and rps_ratio >= floor,
            )
        )
        out.append(
            Verdict(
                f"{name} p99 <= {ceiling}x bare p99",
                f"{p99_ratio:.2f}x",
                clean and p99_ratio <= ceiling,
            )
        )
        if not clean:
            out[-2:] = [Verdict(v.target, v.value + " (errors)", None) for v in out[-2:]]
    stream = results["load"]["chat_stream"]
    out.append(
        Verdict(
            "chat 200-token stream TTFB <= 2x whole",
            f"{stream['ratio']:.2f}x",
            stream["ratio"] <= 2,
        )
    )
    render = results["render"]
    if "skipped" in render:
        out.append(Verdict("render 1440x720 <= 2x Pillow flat RGB", "skipped", None))
    else:
        ratio = render["ratio_1440x720"]
        out.append(
            Verdict("render 1440x720 <= 0.1x Pillow flat RGB", f"{ratio:.3f}x", ratio <= 0.1)
        )
        for size, limit in (("1024x1024", 1.5), ("2048x2048", 5.0), ("3136x1344", 5.0)):
            ms = render["sizes"][size]["ms"]
            out.append(Verdict(f"render {size} <= {limit} ms", f"{ms:.2f} ms", ms <= limit))
    out += media_verdicts(results.get("media_render", {}))
    out += cycle_verdicts(results.get("cycles"))
    if results.get("render_load"):
        target, value, ok = render_load.verdict(results["render_load"])
        out.append(Verdict(target, value, ok))
    start = results["startup"]["emulator"]["median_s"]
    out.append(Verdict("start to first answer < 0.5 s", f"{start:.3f} s", start < 0.5))
    return out


def media_verdicts(media: dict[str, Any]) -> list[Verdict]:
    """First render of 5 s 1280x720 MP4 <= 250 ms, of a 30 s speech MP3 <= 50 ms."""
    out = []
    for kind, what, limit in (("video", "MP4 5 s 1280x720", MP4_TARGET_MS),
                              ("audio", "MP3 30 s speech", MP3_TARGET_MS)):  # fmt: skip
        name = f"first render {what} <= {limit:.0f} ms"
        found = media.get(kind)
        if found is None or "skipped" in found:
            out.append(Verdict(name, "not measured", None))
        else:
            ms, cpu = found["ms"], found["cpu_ms"]
            value = f"{ms:.1f} ms (CPU {cpu:.1f} ms)"
            out.append(Verdict(name, value, ms <= limit))
    return out


def cycle_verdicts(cycles: dict[str, Any] | None) -> list[Verdict]:
    """Full cycles at 64 clients: >= 2.5x the code before #17, p99 <= 5x an idle poll's."""
    if not cycles or "64" not in cycles["emulator"]:
        return [Verdict("full cycles at 64 clients", "not run", None)]
    emu = cycles["emulator"]["64"]
    clean = emu["errors"] == 0
    base = cycles.get("baseline", {}).get("64", {}).get("cycles_per_s") or cycle.BASELINE_64
    ratio = emu["cycles_per_s"] / base if base else float("nan")
    where = "measured in this run" if cycles.get("baseline") else "recorded"
    p99 = emu["all_p99_ms"] / cycles["idle_poll_ms"]["p99"]
    # the bare stack's own figure: 64 clients in a closed loop queue behind each other, so this
    # target is out of reach of the ceiling too (Little's law: latency = clients / throughput)
    ceiling = cycles.get("bare", {}).get("64")
    bare = (
        f" (bare: {ceiling['all_p99_ms'] / cycles['idle_poll_ms']['p99']:.1f}x)" if ceiling else ""
    )
    return [
        Verdict(
            "cycles/s at 64 clients >= 2.5x before #17",
            f"{ratio:.2f}x ({emu['cycles_per_s']:.0f} vs {base:.0f}, {where})",
            clean and ratio >= 2.5 if base else None,
        ),
        Verdict(
            "cycle p99 (64 clients) <= 5x idle poll p99", f"{p99:.1f}x{bare}", clean and p99 <= 5
        ),
    ]


def print_report(results: dict[str, Any]) -> None:
    load = results["load"]
    st = results["settings"]
    print(
        f"\n== HTTP load: wrk -t1 -c{st['connections']}, {st['duration']} s x {st['rounds']} "
        "rounds, medians; ratios emulator/bare are medians of per-round ratios =="
    )
    print(
        f"{'workload':<13}{'server':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us':>8}"
        f"{'errors':>8}{'rps ratio':>11}{'p99 ratio':>11}{'CPU ratio':>11}"
    )
    for name, sides in load["workloads"].items():
        r = load["ratios"][name]
        for side, s in sides.items():
            ratios = (
                f"{r['rps']:>10.2f}x{r['p99']:>10.2f}x{r['cpu']:>10.2f}x"
                if side == "emulator"
                else ""
            )
            print(
                f"{name:<13}{side:<10}{s['rps']:>10,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
                f"{s['cpu_us']:>8.0f}{s['errors']:>8}{ratios}"
            )
    short = {n: sec for n, sec in load["seconds"].items() if sec != st["duration"]}
    if short:
        names = ", ".join(short)
        print(f"{names}: {min(short.values())} s per run (shorter, to keep make bench short)")
    print(
        "CPU us: the server's user+system CPU time per request (from /proc/PID/stat): a cost "
        "measure that other load on the machine distorts less than req/s."
    )
    print(
        f"download: {load['png_bytes']:,} B PNG; bare serves the same bytes from memory. "
        f"First download (renders) {load['first_download_ms']:.1f} ms, "
        f"second (cached) {load['second_download_ms']:.1f} ms"
    )
    stream = load["chat_stream"]
    print(
        f"chat stream: {stream['completion_tokens']} completion tokens in {stream['chunks']} "
        f"chunks; time to first byte {stream['ttfb_ms']:.2f} ms, whole non-streamed answer "
        f"{stream['whole_ms']:.2f} ms (medians): {stream['ratio']:.2f}x"
    )
    print_render(results["render"])
    print_media_render(results.get("media_render", {}))
    if results.get("cycles"):
        cycle.print_cycles(results["cycles"])
        if results["cycles"].get("baseline"):
            for n, r in results["cycles"]["baseline"].items():
                root = results["cycles"]["baseline_root"]
                print(
                    f"before #17 ({root}), {n} clients: {r['cycles_per_s']:,.0f} cycles/s, "
                    f"p99 {r['all_p99_ms']:.1f} ms"
                )
    if results.get("render_load"):
        render_load.print_render_load(results["render_load"])
    print("\n== Start to first answered GET /_emulator/health (median) ==")
    for name, s in results["startup"].items():
        runs = ", ".join(f"{t:.3f}" for t in s["runs_s"])
        print(f"{name:<9}{s['median_s']:>7.3f} s   (runs: {runs})")
    print("\n== Memory after the load (VmRSS, with the render processes' Pss) ==")
    for name, mib in load["rss_mib"].items():
        print(f"{name:<26}{mib:>7.1f} MiB")
    after = load["emulator_after_load"]
    print(
        f"(emulator real clock holds {after['tasks']:,} tasks, "
        f"{after['journal']:,} journal entries)"
    )
    print("\n== Targets ==")
    for v in results["verdicts"]:
        print(f"{v['label']:<8}{v['target']:<46}{v['value']}")
    print_background(results["background"])


def print_background(bg: dict[str, float]) -> None:
    print(
        f"\nOther processes used {bg['foreign_cores']:.2f} CPU cores on average during the "
        f"{bg['wall_s']:.0f} s run (hypervisor steal: {bg['steal_cores']:.2f} cores)."
    )
    if bg["foreign_cores"] > FOREIGN_LOAD_LIMIT or bg["steal_cores"] > FOREIGN_LOAD_LIMIT:
        print(
            "WARNING: the machine was not quiet; the server or wrk shared its CPU, so absolute "
            "figures and even ratios are unreliable. Rerun on a quiet machine."
        )


def print_media_render(media: dict[str, Any]) -> None:
    if not media:
        return
    cpus = media["cpus"]
    where = f"on CPU {cpus[0]}" if len(cpus) == 1 else f"not pinned (CPUs {cpus})"
    print(f"\n== First render of a video and a speech file, distinct seeds, {where} ==")
    print(
        f"{'file':<22}{'median':>9}{'CPU':>9}{'fastest':>9}{'slowest':>9}{'bytes':>10}"
        f"{'first call':>12}"
    )
    for kind, what in (("video", "MP4 1280x720 5 s"), ("audio", "MP3 speech 30 s")):
        r = media[kind]
        if "skipped" in r:
            print(f"{what:<22}skipped: {r['skipped']}")
            continue
        print(
            f"{what:<22}{r['ms']:>6.1f} ms{r['cpu_ms']:>6.1f} ms{r['fastest_ms']:>6.1f} ms"
            f"{r['slowest_ms']:>6.1f} ms{r['bytes']:>10,}{r['first_call_ms']:>9.1f} ms"
        )
    print("first call: the process's first render of that kind (imports PyAV, loads fonts).")


def print_render(render: dict[str, Any]) -> None:
    print("\n== Placeholder render (render_png, median ms) ==")
    if "skipped" in render:
        print(f"skipped: {render['skipped']}")
        return
    print(f"{'size':<11}{'model':<11}{'ms':>8}{'PNG bytes':>11}")
    for size, s in render["sizes"].items():
        print(f"{size:<11}{s['model']:<11}{s['ms']:>8.2f}{s['bytes']:>11,}")
    print(
        f"first call in the process (font loading): {render['first_call_ms']:.1f} ms; "
        f"first render of a size (its fonts and glyphs): {render['first_of_a_size_ms']:.1f} ms; "
        f"Pillow flat RGB 1440x720, default level: {render['flat_rgb_1440x720_ms']:.2f} ms; "
        f"ratio render/flat: {render['ratio_1440x720']:.2f}x"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per workload (3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 s, 1 round")
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="a checkout of the code before #17 (its .venv): measure its full cycles too",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 1, 1
    if min(args.duration, args.rounds, args.connections) < 1:
        parser.error("--duration, --rounds and --connections must be at least 1")
    return args


def environment(pin: Pinning) -> dict[str, Any]:
    import PIL
    import starlette
    import uvicorn

    return {
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "pillow": PIL.__version__,
        "cpus": os.cpu_count(),
        "pinning": pin.note,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = ensure_wrk()
    pin = Pinning.detect()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: getattr(args, k) for k in ("duration", "rounds", "connections", "quick")},
        "environment": environment(pin),
    }
    print(f"benchmark: {pin.note}; Python {results['environment']['python']}", flush=True)
    meter = CpuMeter()
    with tempfile.TemporaryDirectory(prefix="aio-bench-") as tmp:
        results["load"] = load_benchmark(wrk, pin, args, Path(tmp))
    print("start-up ...", flush=True)
    results["startup"] = startup_benchmark(pin, 2 if args.quick else 5)
    print("full cycles ...", flush=True)
    results["cycles"] = cycle_workload(args)
    print("polls while 8 videos render ...", flush=True)
    results["render_load"] = render_load.render_load_benchmark(1, 0.5 if args.quick else 1.0)
    print("rendering ...", flush=True)
    results["render"] = render_benchmark(3 if args.quick else 7)
    results["media_render"] = media_render_benchmark(3 if args.quick else 5)
    results["verdicts"] = [asdict(v) | {"label": v.label} for v in verdicts(results)]
    results["background"] = meter.report()
    return results


def cycle_workload(args: argparse.Namespace) -> dict[str, Any]:
    """Full cycles at 16 and 64 clients (``cycle.py``); with ``--baseline-root``, the same
    against that checkout, for the 2.5x target."""
    seconds = 1.0 if args.quick else float(args.duration)
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))  # the servers it starts: every CPU
    try:
        return _cycles(args, seconds)
    finally:
        os.sched_setaffinity(0, pinned)


def _cycles(args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aio-cycle-") as tmp:
        result = cycle.cycle_benchmark([16, 64], seconds, Path(tmp))
        if args.baseline_root:
            root = args.baseline_root.resolve()
            python = str(root / ".venv" / "bin" / "python")
            before = cycle.cycle_benchmark([64], seconds, Path(tmp), root, python)
            result["baseline"] = before["emulator"]
            result["baseline_root"] = str(root)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except BenchError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    print_report(results)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
