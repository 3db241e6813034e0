"""Instructions per in-process request: the pytest plugin's respx path vs a static respx mock.

The in-process twin of ``count.py``: a sync ``httpx.Client`` polls a finished task through
``aio_emulator_respx``'s router (respx -> ``inprocess._ASGIBridge`` -> the app), and the same
client gets the same JSON from a plain respx route (``.respond(json=...)``), each in its own
process under callgrind. Per request = (count after N2 calls - count after N1) / (N2 - N1).
Wall-clock figures of ~200 us calls on a shared 2-core machine move by 20-40%; these counts
by about 1%.

Usage: ``python benchmarks/count_inprocess.py [--paths poll,download]`` (needs valgrind, about
2 minutes). ``benchmarks/bench_plugin.py`` times the same calls.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from count import per_request, valgrind_path

FEW, MANY = 300, 900
SIDES = ("in-process", "static")


#: the key the in-process benchmarks use, and the image task they create
KEY_HEADERS = {"Authorization": "Bearer aio_bench"}
SMALL_CREATE = {"model": "cogview-4", "prompt": "a red fox in the snow"}


def in_process_app() -> Any:
    """The app the in-process benchmarks call (``bench_plugin.py`` too): virtual clock,
    ``instant`` tasks, a short journal."""
    from emulator.app import create_app
    from emulator.config import Config

    return create_app(Config(seed=0, clock="virtual", scenario="instant", journal_size=1000))


def respx_handle(app: Any) -> Any:
    """A new in-process handle on ``app``, as ``aio_emulator_respx`` makes (no fixture)."""
    from emulator.handle import Checks
    from emulator.inprocess import RespxEmulatorHandle

    return RespxEmulatorHandle(app.state.emulator, app, "aio_bench", Checks(False))


def _child(side: str, what: str, calls: int) -> None:
    warnings.simplefilter("ignore")
    import httpx
    import respx

    from emulator.marker import REAL_BASE_URL

    app = in_process_app()
    handle = respx_handle(app)
    headers = KEY_HEADERS
    with handle.mocking(), httpx.Client(base_url=REAL_BASE_URL, headers=headers) as client:
        created = client.post("/api/v1/images/generations", json=SMALL_CREATE)
        task_id = created.json()["data"]["task_id"]
        poll = client.get(f"/api/v1/tasks/{task_id}")
        path = f"/api/v1/tasks/{task_id}" if what == "poll" else f"/files/{task_id}/0.png"
        answer = client.get(path)
    static: dict[str, Any] = {"json": poll.json()} if what == "poll" else {
        "content": answer.content, "headers": {"content-type": "image/png"}
    }  # fmt: skip
    router: Any = respx.mock(base_url=REAL_BASE_URL) if side == "static" else handle.mocking()
    with router as mock, httpx.Client(base_url=REAL_BASE_URL, headers=headers) as client:
        if side == "static":
            mock.get(path).respond(**static)
        for _ in range(200):
            client.get(path)
        for _ in range(calls):
            client.get(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="poll", help="poll, download or both (poll)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, what, calls = args.child
        _child(side, what, int(calls))
        return 0
    valgrind = valgrind_path()
    print("instructions per sync httpx request (callgrind, one process each)")
    print(f"{'request':10} {'in-process':>11} {'static':>10} {'ratio':>7}")
    for what in args.paths.split(","):
        per = {side: per_request(valgrind, __file__, side, what, FEW, MANY) for side in SIDES}
        ratio = per["in-process"] / per["static"]
        print(f"{what:10} {per['in-process']:>11,.0f} {per['static']:>10,.0f} {ratio:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
