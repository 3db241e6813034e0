"""Run one benchmark target with the emulator's server settings.

Usage: ``serve_target.py TARGET PORT [--png FILE]`` where TARGET is ``emulator`` (real clock),
``emulator-virtual`` (virtual clock) or ``bare`` (``bare_app``, serving FILE as the PNG).
Port 0 picks a free port. Prints ``READY <port>`` once the socket listens (uvicorn accepts on it
as soon as its loop starts).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn

from emulator.server import bind, uvicorn_config

TARGETS = ("emulator", "emulator-virtual", "bare")
BENCH_CREDITS = 10**12


def build_app(target: str, png: str | None) -> Any:
    """The ASGI app of ``target``."""
    if target == "bare":
        from bare_app import load_app

        return load_app(png)
    from emulator.app import create_app
    from emulator.config import Config

    clock = "virtual" if target == "emulator-virtual" else "real"
    return create_app(Config(seed=1, clock=clock, default_credits=BENCH_CREDITS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("port", type=int)
    parser.add_argument("--png", help="PNG file the bare app serves")
    args = parser.parse_args(argv)
    app = build_app(args.target, args.png)
    sock = bind("127.0.0.1", args.port)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
