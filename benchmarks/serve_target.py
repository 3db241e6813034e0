"""Run the bare Starlette app (``bare_app.py``) with the emulator's server settings.

Usage: ``serve_target.py bare PORT [--png FILE]`` (FILE: the PNG every download serves). Port 0
picks a free port. Prints ``READY <port>`` once the socket listens (uvicorn accepts on it as
soon as its loop starts). The emulator itself is benchmarked through its CLI.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from emulator.server import bind, uvicorn_config

TARGETS = ("bare",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("port", type=int)
    parser.add_argument("--png", help="PNG file the bare app serves")
    args = parser.parse_args(argv)
    from bare_app import load_app

    app = load_app(args.png)
    sock = bind("127.0.0.1", args.port)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
