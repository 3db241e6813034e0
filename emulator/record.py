"""``aio-emulator record``: a recording proxy, and a scenario built from what it recorded.

Point a client at the proxy instead of the real service: every request is forwarded to the
upstream unchanged, and each exchange is stored as ``DIR/NNNN-METHOD-path.json`` (the request
without credentials, the response, the timing). ``build_scenario(DIR)`` turns a recording into a
scenario that replays the observed status words, task durations, failures and errors.
Standard library only (urllib in a worker thread), so it runs wherever the emulator runs.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import itertools
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .catalogue import Catalogue
from .errors import APIError
from .scenarios import loads
from .wire import DEFAULT_FAILURE, DEFAULT_STATUS_WORDS, TASKS_PREFIX, dumps

__all__ = ["RecordingProxy", "build_scenario", "load_exchanges", "main"]

#: never written to a fixture
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}
HOP_HEADERS = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
    "proxy-connection", "host", "content-length", "accept-encoding",
}  # fmt: skip
MAX_STORED_BINARY = 64 * 1024
TASK_PATH = re.compile("^" + re.escape(TASKS_PREFIX) + "([^/]+)$")


def _now_iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _body_fields(raw: bytes, content_type: str) -> dict[str, Any]:
    """A body as fixture fields: parsed JSON, text, or (small) base64 with its digest."""
    if not raw:
        return {}
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return {"body": json.loads(raw)}
        except ValueError:
            pass
    if media.startswith("text/") or media in ("application/json", "application/yaml"):
        return {"body_text": raw.decode("utf-8", "replace")}
    out: dict[str, Any] = {"body_bytes": len(raw), "body_sha256": hashlib.sha256(raw).hexdigest()}
    if len(raw) <= MAX_STORED_BINARY:
        out["body_base64"] = base64.b64encode(raw).decode()
    return out


def _key_fingerprint(authorization: str) -> str | None:
    _, _, key = authorization.partition(" ")
    key = key.strip()
    return hashlib.sha256(key.encode()).hexdigest()[:12] if key else None


class RecordingProxy:
    """An ASGI app forwarding everything to ``upstream`` and saving each exchange in ``out``."""

    def __init__(self, upstream: str, out: str | Path, timeout: float = 120.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        start = len(list(self.out.glob("*.json")))
        self._counter = itertools.count(start + 1)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        )
        started = time.time()
        status, reply_headers, reply = await asyncio.to_thread(
            self._forward, scope["method"], path, headers, body
        )
        seconds = time.time() - started
        self._save(scope["method"], scope["path"], scope["query_string"], headers, body,
                   status, reply_headers, reply, started, seconds)  # fmt: skip
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in reply_headers.items()]
                + [(b"content-length", str(len(reply)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    def _forward(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {k: v for k, v in headers.items() if k not in HOP_HEADERS}
        request = urllib.request.Request(
            self.upstream + path, data=body or None, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, self._keep(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            with exc:  # closes the connection (else: ResourceWarning)
                return exc.code, self._keep(exc.headers), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            message = f"aio-emulator record: upstream {self.upstream} unreachable: {reason}"
            error = APIError(message, status=502)
            return 502, {"content-type": "application/json"}, dumps(error.body())

    @staticmethod
    def _keep(headers: Any) -> dict[str, str]:
        return {k.lower(): v for k, v in headers.items() if k.lower() not in HOP_HEADERS}

    def _save(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        reply_headers: Mapping[str, str],
        reply: bytes,
        started: float,
        seconds: float,
    ) -> Path:
        n = next(self._counter)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")[:60] or "root"
        kept = {
            k: v for k, v in headers.items() if k not in SECRET_HEADERS and k not in HOP_HEADERS
        }
        exchange = {
            "$comment": "Recorded by aio-emulator record; credentials were not stored.",
            "request": {
                "method": method,
                "path": path,
                "query": query.decode("latin-1"),
                "headers": kept,
                "key_fingerprint": _key_fingerprint(headers.get("authorization", "")),
                **_body_fields(body, headers.get("content-type", "")),
            },
            "response": {
                "status": status,
                "headers": dict(reply_headers),
                **_body_fields(reply, reply_headers.get("content-type", "")),
            },
            "timing": {
                "started_at": _now_iso(started),
                "started_epoch": round(started, 6),
                "seconds": round(seconds, 6),
            },
        }
        target = self.out / f"{n:04d}-{method}-{slug}.json"
        target.write_text(json.dumps(exchange, indent=2, ensure_ascii=False) + "\n", "utf-8")
        return target


# -- from a recording to a scenario ---------------------------------------------------------


def load_exchanges(folder: str | Path) -> list[dict[str, Any]]:
    """The recorded exchanges of ``folder``, in the order they happened."""
    exchanges = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        if isinstance(data, dict) and {"request", "response", "timing"} <= set(data):
            exchanges.append(data)
    return sorted(exchanges, key=lambda e: e["timing"]["started_epoch"])


def _data(exchange: Mapping[str, Any]) -> dict[str, Any] | None:
    body = exchange["response"].get("body")
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def _span(values: Iterable[float], digits: int = 3) -> float | dict[str, list[float]]:
    values = sorted(values)
    low, high = round(values[0], digits), round(values[-1], digits)
    return low if low == high else {"uniform": [low, high]}


def build_scenario(folder: str | Path, name: str = "recorded") -> tuple[dict[str, Any], str]:
    """(scenario data, YAML text) replaying a recording: status words, per-model durations and
    failure rates, create errors and their rates, and the observed latency."""
    exchanges = load_exchanges(folder)
    create_paths = Catalogue.default().by_path  # every family's create route
    tasks: dict[str, dict[str, Any]] = {}
    creates = 0
    create_errors: collections.Counter[tuple[int, str, str]] = collections.Counter()
    latencies: list[float] = []
    progress_words: list[str] = []
    final_words: dict[str, str] = {}
    for ex in exchanges:
        request, response, timing = ex["request"], ex["response"], ex["timing"]
        if request["path"] in create_paths and request["method"] == "POST":
            creates += 1
            latencies.append(timing["seconds"])
            data = _data(ex)
            if response["status"] == 200 and data and isinstance(data.get("task_id"), str):
                body = request.get("body") if isinstance(request.get("body"), dict) else {}
                tasks[data["task_id"]] = {
                    "model": str(body.get("model", "")),
                    "created": timing["started_epoch"] + timing["seconds"],
                }
                if isinstance(data.get("status"), str) and data["status"] not in progress_words:
                    progress_words.append(data["status"])
            else:
                error = (response.get("body") or {}).get("error") if isinstance(
                    response.get("body"), dict
                ) else None  # fmt: skip
                error = error if isinstance(error, dict) else {}
                create_errors[(response["status"], str(error.get("type", "")),
                               str(error.get("message", "")))] += 1  # fmt: skip
            continue
        match = TASK_PATH.match(request["path"])
        data = _data(ex)
        if not (match and request["method"] == "GET" and response["status"] == 200 and data):
            continue
        latencies.append(timing["seconds"])
        task = tasks.get(match[1])
        status = data.get("status")
        if task is None or not isinstance(status, str) or "end" in task:
            continue
        seen_at = timing["started_epoch"]
        if data.get("output") is not None or data.get("error"):
            state = "succeeded" if data.get("output") is not None else "failed"
            final_words.setdefault(state, status)
            task.update(end=seen_at, state=state, error=data.get("error"))
        else:
            task["last_running"] = seen_at
            if status not in progress_words:
                progress_words.append(status)
    return _scenario(
        name, folder, tasks, creates, create_errors, latencies, progress_words, final_words
    )


def _scenario(
    name: str,
    folder: str | Path,
    tasks: Mapping[str, dict[str, Any]],
    creates: int,
    create_errors: collections.Counter[tuple[int, str, str]],
    latencies: list[float],
    progress_words: list[str],
    final_words: Mapping[str, str],
) -> tuple[dict[str, Any], str]:
    default = {state.value: word for state, word in DEFAULT_STATUS_WORDS.items()}
    words: dict[str, str] = {}
    if progress_words:
        if progress_words[0] != default["queued"]:
            words["queued"] = progress_words[0]
        if progress_words[-1] != default["running"]:
            words["running"] = progress_words[-1]
    for state, word in final_words.items():
        if word != default[state]:
            words[state] = word
    rules: list[dict[str, Any]] = []
    remaining = creates
    client_errors: list[str] = []
    for (status, type_, message), count in create_errors.most_common():
        if status < 400 or remaining <= 0:
            continue
        if status < 500 and status != 429:  # a consequence of the request, not of the server
            client_errors.append(
                f"#   {count} x {status} {type_}: {' '.join(message.split())[:100]}"
            )
            continue
        error: dict[str, Any] = {"status": status, "message": message or f"HTTP {status}"}
        if type_:
            error["type"] = type_
        rules.append(
            {
                "name": f"observed {status} {type_}".strip(),
                "match": {"endpoint": "create", "probability": round(count / remaining, 4)},
                "error": error,
            }
        )
        remaining -= count
    by_model: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for task in tasks.values():
        if "end" in task and task["model"]:
            by_model[task["model"]].append(task)
    for model, ended in sorted(by_model.items()):
        durations = [_duration(t) for t in ended]
        running = _span(durations)
        failed = [t for t in ended if t["state"] == "failed"]
        if failed:
            reason = collections.Counter(str(t.get("error") or "") for t in failed).most_common(1)
            rules.append(
                {
                    "name": f"observed {model} failures",
                    "match": {
                        "endpoint": "create",
                        "model": model,
                        "probability": round(len(failed) / len(ended), 4),
                    },
                    "task": {
                        "queued": 0,
                        "running": running,
                        "outcome": "fail",
                        "error": reason[0][0] or DEFAULT_FAILURE,
                    },
                }
            )
        rules.append(
            {
                "name": f"observed {model} timing",
                "match": {"endpoint": "create", "model": model},
                "task": {"queued": 0, "running": running},
            }
        )
    data: dict[str, Any] = {
        "name": name,
        "description": f"Replays the recording in {folder}: {len(tasks)} task(s), "
        f"{creates} create request(s).",
    }
    if words:
        data["status_words"] = words
    if latencies:
        data["defaults"] = {"latency": _span([s * 1000 for s in latencies], digits=1)}
    if rules:
        data["rules"] = rules
    text = (
        f"# Built by aio-emulator record --build-scenario {folder}\n"
        "# Task durations are estimated between the last poll that saw the task running and\n"
        "# the first that saw it end; latency is what the proxy measured (upstream included).\n"
        + (
            "# Client errors seen (the emulator answers these by itself, not replayed):\n"
            + "\n".join(client_errors)
            + "\n"
            if client_errors
            else ""
        )
        + yaml.dump(data, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100)
    )
    loads(text, source="<recorded>")  # what we print must load
    return data, text


class _NoAliases(yaml.SafeDumper):
    """Writes shared values out in full (no &id001 anchors in a file people read)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _duration(task: Mapping[str, Any]) -> float:
    """Midpoint between the last poll that saw it running and the first that saw it end."""
    end = float(task["end"]) - float(task["created"])
    last = task.get("last_running")
    if last is None:
        return max(0.0, end)
    return max(0.0, ((float(last) - float(task["created"])) + end) / 2)


# -- command line ---------------------------------------------------------------------------


def main(args: Any) -> int:
    """The ``record`` subcommand: proxy (``--upstream --out``) or ``--build-scenario DIR``."""
    if args.build_scenario:
        if not Path(args.build_scenario).is_dir():
            print(f"aio-emulator record: {args.build_scenario} is not a folder", file=sys.stderr)
            return 2
        _, text = build_scenario(args.build_scenario)
        sys.stdout.write(text)
        return 0
    if not args.upstream or not args.out:
        print(
            "aio-emulator record: give --upstream URL and --out DIR to record, or "
            "--build-scenario DIR to turn a recording into a scenario",
            file=sys.stderr,
        )
        return 2
    if not args.upstream.startswith(("http://", "https://")):
        print("aio-emulator record: --upstream must be an http(s) URL", file=sys.stderr)
        return 2
    from .server import Server, bind, uvicorn_config

    app = RecordingProxy(args.upstream, args.out)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"aio-emulator record: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 1
    port = sock.getsockname()[1]
    line = (
        f"Recording proxy on http://{args.host}:{port} -> {app.upstream}, fixtures in "
        f"{app.out}. Press Ctrl+C to stop."
    )
    Server(uvicorn_config(app), on_started=lambda: print(line, flush=True)).run(sockets=[sock])
    print(f"Stopped. Build a scenario with: aio-emulator record --build-scenario {app.out}")
    return 0
