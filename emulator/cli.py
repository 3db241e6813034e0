"""The ``aio-emulator`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .config import Config, ConfigError, parse_key_scenarios, parse_keys

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aio-emulator",
        description="Local emulator of the API in One image-generation API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the emulator server")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000; 0 = any free)")
    serve.add_argument(
        "--seed", type=int, help="seed for ids, timings and colours (default: random, printed)"
    )
    serve.add_argument(
        "--public-url", help="base of image URLs, e.g. http://localhost:8080 behind a proxy"
    )
    serve.add_argument(
        "--clock",
        choices=["real", "virtual"],
        help="real time (default) or a virtual clock moved by POST /_emulator/clock/advance",
    )
    serve.add_argument(
        "--default-credits", type=int, help="starting balance of any new key (default 1000000)"
    )
    serve.add_argument(
        "--key",
        action="append",
        metavar="KEY[=CREDITS]",
        help="pre-register a key, optionally with a balance; repeatable",
    )
    serve.add_argument(
        "--only-known-keys",
        action="store_true",
        default=None,
        help="reject keys not registered with --key or the control API",
    )
    serve.add_argument(
        "--task-ttl",
        type=float,
        dest="task_ttl_s",
        help="seconds a finished task is kept (default 3600)",
    )
    serve.add_argument("--max-tasks", type=int, help="most tasks kept at once (default 10000)")
    serve.add_argument(
        "--scenario",
        metavar="NAME_OR_PATH",
        help="ready scenario name or YAML file (default: default); the file is hot-reloaded",
    )
    serve.add_argument(
        "--key-scenario",
        action="append",
        metavar="KEY=SCENARIO",
        help="serve one API key with its own scenario; repeatable",
    )
    validate = sub.add_parser("validate", help="check scenario files offline")
    validate.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("scenarios", help="list the ready scenarios")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "validate":
            return _validate(args.files)
        if args.command == "scenarios":
            return _list_scenarios()
        if args.command == "schema":
            from importlib import resources

            print(resources.files("emulator").joinpath("data/scenario.schema.json").read_text())
            return 0
    except ConfigError as exc:
        print(f"aio-emulator: {exc}", file=sys.stderr)
        return 2
    return 1


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .scenarios import ScenarioError
    from .server import Server, bind, uvicorn_config

    keys = parse_keys(args.key) if args.key else None
    key_scenarios = parse_key_scenarios(args.key_scenario) if args.key_scenario else None
    config = Config.from_env(
        host=args.host,
        port=args.port,
        seed=args.seed,
        public_url=args.public_url,
        clock=args.clock,
        default_credits=args.default_credits,
        keys=keys,
        only_known_keys=args.only_known_keys,
        task_ttl_s=args.task_ttl_s,
        max_tasks=args.max_tasks,
        scenario=args.scenario,
        key_scenarios=key_scenarios,
    )
    try:
        app = create_app(config)
    except ScenarioError as exc:
        print(f"aio-emulator: cannot start with this scenario:\n{exc}", file=sys.stderr)
        return 2
    emulator = app.state.emulator
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        print(
            f"aio-emulator: cannot listen on {config.host}:{config.port}: {exc.strerror}. "
            "Pick another port with --port.",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    line = (
        f"API in One emulator {__version__} listening on http://{host}:{port} "
        f"(scenario: {emulator.scenario.scenario.name}, clock: {config.clock}, "
        f"seed: {emulator.seed}). "
        "Press Ctrl+C to stop."
    )
    Server(uvicorn_config(app), on_started=lambda: print(line, flush=True)).run(sockets=[sock])
    print("API in One emulator stopped.", flush=True)
    return 0


def _validate(files: Sequence[str]) -> int:
    from .scenarios import ScenarioError, load_file

    failed = 0
    for name in files:
        try:
            scenario = load_file(name)
        except ScenarioError as exc:
            failed += 1
            print(exc, file=sys.stderr)
        else:
            print(f"{name}: ok ({scenario.name}, {len(scenario.rules)} rules)")
    return 1 if failed else 0


def _list_scenarios() -> int:
    from .scenarios import library, load_file

    for name, path in sorted(library().items()):
        print(f"{name:22} {load_file(path).description}")
    return 0
