"""Benchmark of the pytest plugin: a user's suite of 100 create-poll-download tests.

Runs, each in its own ``pytest`` process, the same 100 tests (``benchmarks/plugin_suite/``):

- ``static respx``: a plain respx mock answering canned JSON and a canned PNG (the baseline);
- ``plugin, in-process``: the ``aio_emulator_respx`` fixture (respx routes to the emulator app);
- ``plugin, live server``: the ``aio_emulator`` fixture (a uvicorn server in a thread).

Rounds are interleaved so drift hits every suite alike; medians over rounds. Prints the wall
time of each run (interpreter start-up included, as a user sees it), pytest's own session time,
the time per test, and the ratio to the baseline. Then the cost of one poll request each way a
test can reach the emulator, in this process (best of 3 batches), the median first download of a
new 1024x1024 PNG in-process (a render each, as in the suites), and the two the target compares
(an in-process sync poll and a static respx answer) again in interleaved rounds: the ratio is the
median of the rounds' ratios, so drift and garbage collections hit both alike. Exit status 1 if
a suite fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from count_inprocess import KEY_HEADERS, SMALL_CREATE, in_process_app, respx_handle

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(__file__).resolve().parent / "plugin_suite"
SUITES = {
    "static respx (baseline)": "test_static_respx.py",
    "plugin, in-process (respx)": "test_plugin_respx.py",
    "plugin, live server": "test_plugin_live.py",
}
TESTS = 100
# the same plugins for every suite; hypothesis is not used and its summary hook costs seconds
PYTEST = [
    sys.executable,
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
]
SESSION_TIME = re.compile(r"(\d+) passed.* in ([\d.]+)s")


def run(test_file: str) -> tuple[float, float]:
    """Wall time of one pytest run of ``test_file`` and the session time pytest reports."""
    started = time.perf_counter()
    done = subprocess.run(
        [*PYTEST, str(SUITE / test_file)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    match = SESSION_TIME.search(done.stdout)
    if done.returncode != 0 or match is None or int(match.group(1)) != TESTS:
        sys.exit(f"{test_file} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return wall, float(match.group(2))


def per_request(requests: int = 500) -> list[tuple[str, float]]:
    """Microseconds per poll (``GET /api/v1/tasks/{id}``) for each way of reaching the app."""
    warnings.simplefilter("ignore")  # TestClient's nudge towards httpx2, at import
    import httpx
    import respx
    from starlette.testclient import TestClient

    from emulator.marker import REAL_BASE_URL
    from emulator.server import LiveServer

    app = in_process_app()
    headers = KEY_HEADERS
    with TestClient(app, base_url=REAL_BASE_URL) as test_client:
        created = test_client.post("/api/v1/images/generations", json=SMALL_CREATE, headers=headers)
        path = f"/api/v1/tasks/{created.json()['data']['task_id']}"
        results = [("starlette TestClient", _best(lambda: test_client.get(path, headers=headers)))]

    with respx_handle(app).mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=headers) as c:
        results.append(("plugin in-process, httpx.Client", _best(lambda: c.get(path))))
        results.append(("  its first download of a new 1024x1024", _first_downloads(c)))

    async def async_client() -> float:
        async with httpx.AsyncClient(base_url=REAL_BASE_URL, headers=headers) as client:
            await client.get(path)
            batches = []
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get(path)
                batches.append((time.perf_counter() - started) / requests * 1e6)
            return min(batches)

    with respx_handle(app).mocking():
        results.append(("plugin in-process, httpx.AsyncClient", asyncio.run(async_client())))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, headers=headers) as c:
        results.append(("plugin live server, httpx.Client", _best(lambda: c.get(path))))
    static = test_client.get(path, headers=headers).json()
    with respx.mock(base_url=REAL_BASE_URL) as mock, httpx.Client(headers=headers) as c:
        mock.get(path).respond(json=static)
        results.append(
            ("respx static JSON, httpx.Client", _best(lambda: c.get(REAL_BASE_URL + path)))
        )
    return results


def _first_downloads(client: Any, files: int = 100) -> float:
    """Median microseconds of the first download of a new 1024x1024 PNG (a render each: every
    prompt differs, as in the suites), the tasks created and polled beforehand."""
    urls = []
    for n in range(files):
        body = {"model": "cogview-4", "prompt": f"a fox, file {n}", "size": "1024*1024"}
        task_id = client.post("/api/v1/images/generations", json=body).json()["data"]["task_id"]
        urls.append(client.get(f"/api/v1/tasks/{task_id}").json()["data"]["output"]["image_url"])
    times = []
    for url in urls:
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def poll_ratio(rounds: int = 9, requests: int = 300) -> tuple[float, float, float]:
    """(in-process us, static us, ratio) of one sync poll, in alternating rounds: each round
    times ``requests`` polls one way, then the other (the order alternating), each in a fresh
    fixture context; the figures are the best rounds, the ratio the median of the rounds'."""
    warnings.simplefilter("ignore")
    import httpx
    import respx

    from emulator.marker import REAL_BASE_URL

    app = in_process_app()
    headers = KEY_HEADERS
    with respx_handle(app).mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=headers) as c:
        task_id = c.post("/api/v1/images/generations", json=SMALL_CREATE).json()["data"]["task_id"]
        path = f"/api/v1/tasks/{task_id}"
        static = c.get(path).json()

    def in_process() -> float:
        with (
            respx_handle(app).mocking(),
            httpx.Client(base_url=REAL_BASE_URL, headers=headers) as c,
        ):
            return _batch(lambda: c.get(path), requests)

    def respx_static() -> float:
        with (
            respx.mock(base_url=REAL_BASE_URL) as mock,
            httpx.Client(base_url=REAL_BASE_URL, headers=headers) as c,
        ):
            mock.get(path).respond(json=static)
            return _batch(lambda: c.get(path), requests)

    times: dict[str, list[float]] = {"in": [], "static": []}
    for round_ in range(rounds):
        sides = [("in", in_process), ("static", respx_static)]
        for name, measure in sides if round_ % 2 == 0 else reversed(sides):
            times[name].append(measure())
    ratios = [a / b for a, b in zip(times["in"], times["static"], strict=True)]
    return min(times["in"]), min(times["static"]), statistics.median(ratios)


def _batch(call: Callable[[], object], requests: int) -> float:
    """Microseconds per call of ``call``, over ``requests`` calls after one warm-up call."""
    call()
    return _per_call(call, requests)


def _best(call: Callable[[], object], requests: int = 500) -> float:
    """The best of 3 batches of ``requests`` calls, after one warm-up call."""
    call()
    return min(_per_call(call, requests) for _ in range(3))


def _per_call(call: Callable[[], object], requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        call()
    return (time.perf_counter() - started) / requests * 1e6


def verdicts(rows: list[dict[str, Any]], poll: tuple[float, float, float]) -> list[str]:
    """The targets of #17: the in-process suite <= 1.3x the static respx suite's pytest time,
    one in-process sync poll <= 1.2x a static respx answer (:func:`poll_ratio`)."""
    suite = next(row for row in rows if row["suite"].startswith("plugin, in-process"))
    in_process, static, ratio = poll
    out = []
    for ok, target, value in (
        (suite["ratio_session"] <= 1.3, "in-process suite <= 1.3x static respx (pytest time)",
         f"{suite['ratio_session']:.2f}x"),
        (ratio <= 1.2, "in-process sync poll <= 1.2x static respx",
         f"{ratio:.2f}x (best rounds {in_process:.0f} vs {static:.0f} us)"),
    ):  # fmt: skip
        out.append(f"{'PASS' if ok else 'FAIL':<8}{target:<55}{value}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each suite (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    walls: dict[str, list[float]] = {name: [] for name in SUITES}
    sessions: dict[str, list[float]] = {name: [] for name in SUITES}
    for round_ in range(args.rounds):
        order = list(SUITES) if round_ % 2 == 0 else list(reversed(SUITES))
        for name in order:
            wall, session = run(SUITES[name])
            walls[name].append(wall)
            sessions[name].append(session)

    base_wall = statistics.median(walls[next(iter(SUITES))])
    base_session = statistics.median(sessions[next(iter(SUITES))])
    rows = []
    for name in SUITES:
        wall, session = statistics.median(walls[name]), statistics.median(sessions[name])
        rows.append(
            {
                "suite": name,
                "wall_s": round(wall, 2),
                "session_s": round(session, 2),
                "per_test_ms": round(session / TESTS * 1000, 1),
                "ratio_wall": round(wall / base_wall, 2),
                "ratio_session": round(session / base_session, 2),
            }
        )

    print(f"{TESTS} tests, each create -> poll -> download; medians of {args.rounds} rounds")
    print(
        f"{'suite':28} {'wall s':>7} {'pytest s':>9} {'ms/test':>8} {'x wall':>7} {'x pytest':>9}"
    )
    for row in rows:
        print(
            f"{row['suite']:28} {row['wall_s']:7.2f} {row['session_s']:9.2f} "
            f"{row['per_test_ms']:8.1f} {row['ratio_wall']:7.2f} {row['ratio_session']:9.2f}"
        )
    print(f"\n{'one poll request (and one download)':40} {'us':>6}")
    requests = per_request()
    for name, micros in requests:
        print(f"{name:40} {micros:6.0f}")
    poll = poll_ratio()
    print(f"{'interleaved: in-process sync poll':40} {poll[0]:6.0f}")
    print(f"{'interleaved: respx static JSON':40} {poll[1]:6.0f}")
    print()
    for verdict in verdicts(rows, poll):
        print(verdict)
    if args.json:
        figures = {
            "tests": TESTS,
            "rounds": args.rounds,
            "suites": rows,
            "per_request_us": dict(requests),
            "poll_ratio": {"in_process_us": poll[0], "static_us": poll[1], "ratio": poll[2]},
        }
        args.json.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
