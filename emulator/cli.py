"""The ``aio-emulator`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from . import __version__
from .config import Config, ConfigError, parse_key_scenarios, parse_keys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and exit status 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_N = TypeVar("_N", int, float)


def _checked(
    kind: Callable[[str], _N], ok: Callable[[_N], bool], allowed: str
) -> Callable[[str], _N]:
    """An argparse type: ``kind(text)`` if ``ok`` of it, else an error naming what is allowed."""

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
        return value

    return parse


_PORT = _checked(int, lambda v: 0 <= v <= 65535, "a port (0 to 65535)")
_COUNT = _checked(int, lambda v: v >= 1, "a whole number of at least 1")
_CREDITS = _checked(int, lambda v: v >= 0, "a whole number of credits, 0 or more")
_SECONDS = _checked(float, lambda v: 0 < v < 1e9, "a number of seconds above 0")
_AGE = _checked(float, lambda v: v >= 0, "a number of seconds, 0 or more")  # (inf: forever)


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or not text.split("://", 1)[1].strip("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


def _new_file(text: str) -> str:
    """A file to be written: its folder must exist."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text) or not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{text!r}: no folder to write this file in")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aio-emulator",
        description=(
            "Local emulator of the API in One gateway: images, videos, music, speech, image "
            "tools, chat."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the emulator server")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_PORT, help="port to listen on (default 8000; 0 = any free)")
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
        "--default-credits", type=_CREDITS, help="starting balance of any new key (default 1000000)"
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
        type=_AGE,
        dest="task_ttl_s",
        help="seconds a finished task is kept (default 3600)",
    )
    serve.add_argument("--max-tasks", type=_COUNT, help="most tasks kept at once (default 10000)")
    serve.add_argument(
        "--scenario",
        action="append",
        metavar="NAME_OR_PATH",
        help="ready scenario name or YAML file (default: default); the file is hot-reloaded; "
        "repeatable: several apply in order (rules concatenated, later defaults win)",
    )
    serve.add_argument(
        "--key-scenario",
        action="append",
        metavar="KEY=SCENARIO",
        help="serve one API key with its own scenario; repeatable",
    )
    serve.add_argument(
        "--state-file",
        metavar="PATH",
        help="save tasks, balances, clock and journal here; restored at start-up",
    )
    serve.add_argument(
        "--state-interval",
        type=_SECONDS,
        dest="state_interval_s",
        metavar="SECONDS",
        help="seconds between saves of the state file, when something changed (default 5)",
    )
    serve.add_argument(
        "--max-connections",
        type=_COUNT,
        metavar="N",
        help="most connections served at once; beyond them requests get 503 (default 512)",
    )
    serve.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="require this token on /_emulator/ calls; needed to listen beyond loopback",
    )
    serve.add_argument(
        "--control-token-file",
        metavar="PATH",
        help="read the control token from this file (kept out of the process list)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        metavar="ORIGIN",
        help="origin whose pages may call the emulated API (default: any, '*'); repeatable",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        dest="allowed_hosts",
        metavar="HOST",
        help="a host name the control API answers besides loopback names; repeatable",
    )
    validate = sub.add_parser("validate", help="check scenario files offline")
    validate.add_argument("files", nargs="+", metavar="FILE")
    sub.add_parser("scenarios", help="list the ready scenarios")
    sub.add_parser("schema", help="print the JSON Schema of scenario files")
    _add_verify(sub)
    _add_record(sub)
    return parser


def _add_verify(sub: argparse._SubParsersAction[_Parser]) -> None:
    verify = sub.add_parser(
        "verify", help="run the contract checks against a server claiming to be the API"
    )
    verify.add_argument("--base-url", required=True, type=_http_url, help="e.g. https://apiin.one")
    verify.add_argument("--api-key", required=True, help="an aio_ key of that server")
    verify.add_argument(
        "--model", default="cogview-4", help="model to generate with (default cogview-4)"
    )
    verify.add_argument(
        "--max-credits",
        type=_CREDITS,
        default=10,
        help="refuse plans that may cost more (default 10)",
    )
    verify.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    verify.add_argument(
        "--chat",
        action="store_true",
        help="also probe the chat route (2 credits expected, up to 10: raise --max-credits)",
    )
    verify.add_argument(
        "--write-scenario",
        metavar="FILE",
        type=_new_file,
        help="write a scenario matching the server",
    )
    verify.add_argument(
        "--scenario",
        metavar="NAME_OR_PATH",
        help="expect what the emulator does with this scenario",
    )
    verify.add_argument(
        "--json", metavar="FILE", type=_new_file, help="also write the report as JSON"
    )
    verify.add_argument("--interval", type=_SECONDS, default=1.0, help="seconds between polls")
    verify.add_argument(
        "--timeout", type=_SECONDS, default=180.0, help="seconds to wait for the task"
    )


def _add_record(sub: argparse._SubParsersAction[_Parser]) -> None:
    record = sub.add_parser(
        "record", help="proxy to an upstream, saving every exchange as a fixture"
    )
    record.add_argument("--upstream", help="e.g. https://apiin.one")  # (checked by record)
    record.add_argument("--out", metavar="DIR", help="folder for the fixtures")
    record.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    record.add_argument("--port", type=_PORT, default=8001, help="port to listen on (0 = any free)")
    record.add_argument(
        "--build-scenario",
        metavar="DIR",
        help="instead of proxying: print a scenario replaying the fixtures in DIR",
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `aio-emulator schema | head -1`: the reader has gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # (so the flush at exit does not fail again)
        return 1


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "validate":
            return _validate(args.files)
        if args.command == "scenarios":
            return _list_scenarios()
        if args.command == "verify":
            from .verify import main as verify_main

            return verify_main(args)
        if args.command == "record":
            from .record import main as record_main

            return record_main(args)
        if args.command == "schema":
            from importlib import resources

            print(resources.files("emulator").joinpath("data/scenario.schema.json").read_text())
            return 0
    except ConfigError as exc:
        print(f"aio-emulator: {exc}", file=sys.stderr)
        return 2
    return 1


def _token_file(path: str | None) -> str | None:
    """The control token kept in a file (``--control-token-file``, else the variable
    ``AIO_EMULATOR_CONTROL_TOKEN_FILE``): its first line, without surrounding white space."""
    path = path or os.environ.get("AIO_EMULATOR_CONTROL_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"control token file {path}: cannot read it ({exc})") from exc
    if not token:
        raise ConfigError(f"control token file {path}: it is empty")
    return token


def _serve(args: argparse.Namespace) -> int:
    import socket

    from .app import create_app
    from .binding import raise_fd_limit
    from .garbage import freeze_startup_objects
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
        scenario=tuple(args.scenario) if args.scenario else None,
        key_scenarios=key_scenarios,
        state_file=args.state_file,
        state_interval_s=args.state_interval_s,
        control_token=args.control_token or _token_file(args.control_token_file),
        cors_origins=tuple(args.cors_origins) if args.cors_origins else None,
        allowed_hosts=tuple(args.allowed_hosts) if args.allowed_hosts else None,
        max_connections=args.max_connections,
    )
    if config.control_token is None and not _loopback(config.host):
        print(
            f"aio-emulator: refusing to listen on {config.host} without a control token: anyone "
            "who can reach it could reset it or change balances. Add --control-token TOKEN "
            "(or AIO_EMULATOR_CONTROL_TOKEN), or listen on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    state_errors: tuple[type[Exception], ...] = ()
    if config.state_file:  # the state module loads only when a state file is used
        from .state import StateError, check_writable

        state_errors = (StateError,)
    try:
        if config.state_file:
            check_writable(config.state_file)
        app = create_app(config)
    except ScenarioError as exc:
        print(f"aio-emulator: cannot start with this scenario: {exc}", file=sys.stderr)
        return 2
    except state_errors as exc:
        print(f"aio-emulator: cannot start from the state file: {exc}", file=sys.stderr)
        return 2
    emulator = app.state.emulator
    raise_fd_limit()
    freeze_startup_objects()
    try:
        sock = bind(config.host, config.port)
    except socket.gaierror as exc:
        print(f"aio-emulator: --host {config.host}: not an address of this machine "
              f"({exc.strerror})", file=sys.stderr)  # fmt: skip
        return 2
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
    server = Server(
        uvicorn_config(app), on_started=lambda: print(line, flush=True), housekeeping=True
    )
    server.run(sockets=[sock])
    if server.final_save_failed:
        print("API in One emulator stopped; its last state was NOT saved.", flush=True)
        return 1
    print("API in One emulator stopped.", flush=True)
    return 0


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can reach the control API."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
            for warning in scenario.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(f"{name}: ok ({scenario.name}, {len(scenario.rules)} rules)")
    return 1 if failed else 0


def _list_scenarios() -> int:
    from .scenarios import library, load_file

    for name, path in sorted(library().items()):
        print(f"{name:22} {load_file(path).description}")
    return 0
