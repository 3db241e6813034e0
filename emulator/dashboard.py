"""The dashboard at /_emulator/: a static page (no build step, no CDN) and the feed it polls.

The page polls ``GET /_emulator/ui/feed`` with an incremental cursor: the journal's ``seq`` of
the last request it has seen, plus the ids of the tasks it shows as still running. An answer
holds only the requests after the cursor and the tasks they touched or the page watches, so a
poll costs in proportion to what changed. Nothing runs in the background: with no page open
the dashboard costs nothing (control paths are not journaled, so polls do not show up either).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .catalogue import Model
from .chat.usage import content_text
from .clock import iso
from .errors import NotFound
from .http import json_response
from .journal import Entry
from .media import file_name
from .ranges import file_reply
from .service import Emulator
from .tasks import State, Task, observe
from .wire import DEFAULT_FAILURE, FILES_PREFIX, StatusWords, task_data

__all__ = ["routes"]

#: Most requests or tasks in one feed answer; a larger gap resends a snapshot of the newest.
FEED_LIMIT = 200
#: Most task ids a page may ask to watch in one poll.
WATCH_LIMIT = 200
PROMPT_CHARS = 500
#: the page's own route to the files of finished tasks, every kind (images, videos, clips);
#: named for the images it first served, kept so that links and docs keep working
IMAGES = "/_emulator/ui/images"
BODY_CHARS = 64 * 1024
#: most characters of one message (or reply) in a chat call's transcript
TURN_CHARS = 4000

_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Everything the page loads comes from here; inline scripts and styles are refused, so a
#: prompt that slipped into the DOM as markup still could not run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: on every answer of the file route: the page's players and thumbnails may keep a file an
#: hour (its URL names one task's file, whose bytes do not change); never sniffed
_FILE_HEADERS = (
    (b"cache-control", b"private, max-age=3600"),
    (b"x-content-type-options", b"nosniff"),
)


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


@cache
def _asset(name: str) -> bytes:
    return resources.files("emulator").joinpath("data", "dashboard", name).read_bytes()


async def page(request: Request) -> Response:
    """The dashboard itself."""
    return _serve("index.html")


async def asset(request: Request) -> Response:
    """A file of the page (a fixed list: no paths from the URL reach the file system)."""
    name = request.path_params["name"]
    if name not in _ASSETS or name == "index.html":
        raise NotFound(f"No dashboard file {name[:80]!r}")
    return _serve(name)


def _serve(name: str) -> Response:
    headers = {
        "content-security-policy": _CSP,
        "x-content-type-options": "nosniff",
        "cache-control": "no-cache",
        "referrer-policy": "no-referrer",
    }
    return Response(_asset(name), headers=headers, media_type=_ASSETS[name])


async def to_page(request: Request) -> Response:
    """``/_emulator`` without the slash: to the page."""
    return RedirectResponse("/_emulator/", status_code=308)


async def feed(request: Request) -> Response:
    """What changed since ``since`` (a journal seq), for one key or all.

    Query: ``since`` (left out for a snapshot), ``first`` (the oldest seq the page has seen,
    to notice a reset), ``key`` (filter), ``watch`` (comma-separated ids of running tasks the
    page shows).
    """
    emulator = _emulator(request)
    params = request.query_params
    since = _int(params.get("since"), -1)
    first = params.get("first", "")
    key = params.get("key") or None
    watch = [i for i in params.get("watch", "").split(",") if i][:WATCH_LIMIT]
    emulator.settle()
    now = emulator.clock.now()

    journal = emulator.journal
    oldest = journal.oldest_seq
    latest = journal.seq  # monotonic: a reset empties the journal, not the count
    # the oldest entry changed while the journal was not full: it was reset or cleared
    not_full = len(journal) < journal.maxlen
    restarted = not_full and first != "" and first != str(oldest or "")
    missed = oldest is not None and oldest > since + 1
    fresh: list[Entry] = []
    full = since < 0 or restarted or missed
    if not full:
        for entry in journal.newest():
            if entry.seq <= since:
                break
            fresh.append(entry)
            if len(fresh) > FEED_LIMIT:
                full = True
                break
    if full:
        fresh = _newest(journal.newest(), key, FEED_LIMIT)
        tasks = _newest(reversed(emulator.tasks.all()), key, FEED_LIMIT)
        gone: list[str] = []
        fresh.reverse()  # oldest first
    else:
        fresh = [e for e in reversed(fresh) if key is None or e.key == key]  # oldest first
        ids = dict.fromkeys([*(e.task_id for e in fresh if e.task_id), *watch])
        found = [(i, emulator.tasks.peek(i)) for i in ids]
        tasks = [t for _, t in found if t is not None and (key is None or t.key == key)]
        gone = [i for i, t in found if t is None and i in watch]
    return json_response(
        {
            "full": full,
            "seq": latest,
            "first": oldest,
            "requests": [_request_row(e) for e in fresh],
            "tasks": _task_rows(emulator, tasks, now),
            "gone": gone,
            "clock": {"mode": emulator.clock.mode, "now": iso(now), "epoch": now},
            "scenario": emulator.scenario.scenario.name,
            "scenario_error": emulator.scenarios.reload_error,
            "counts": {"tasks": len(emulator.tasks), "requests": len(journal)},
        }
    )


async def task_file(request: Request) -> Response:
    """A finished task's file for the page (an image, a video, a clip): the same bytes as
    ``/files/{id}/{n}.{ext}``, answered the same way (200, 206 for a ``Range``, as players
    seek; 304, 416), but not journaled and past the scenario's rules, so looking at it or
    playing it changes nothing (no rule counter moves, no latency, no entry in what the app
    under test sent)."""
    index, ext = file_name(request.path_params["name"])
    found = await _emulator(request).file(request.path_params["task_id"], index, ext)
    headers: dict[bytes, bytes] = dict(reversed(request.scope["headers"]))  # first values
    reply = file_reply(
        request.method, headers, found.body, found.etag, found.media_type.encode(),
        _FILE_HEADERS,
    )  # fmt: skip
    response = Response(reply.body, reply.status)
    response.raw_headers = reply.headers  # Content-Length and -Type as file_reply says
    return response


async def request_detail(request: Request) -> Response:
    """One journal entry in full, body included (the feed leaves bodies out)."""
    seq = _int(request.path_params["seq"], -1)
    entry = _emulator(request).journal.find(seq)
    if entry is not None:
        return json_response(_request_row(entry, body=True))
    raise NotFound(f"No request {seq} in the journal (it keeps the newest entries only)")


def _newest(items: Any, key: str | None, limit: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        owner = item.key
        if key is None or owner == key:
            out.append(item)
            if len(out) >= limit:
                break
    return out


def _request_row(entry: Entry, body: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": entry.seq,
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "key": entry.key,
        "status": entry.status,
        "latency_ms": round(entry.latency_s * 1000, 3),
        "rule": entry.rule,
        "error": entry.error,
        "task_id": entry.task_id,
        "time": iso(entry.at),
    }
    if body:
        full = entry.as_dict()
        value = full["body"]
        if isinstance(value, str) and len(value) > BODY_CHARS:
            value = value[:BODY_CHARS] + "…"
        row["body"] = value
        if "response" in full:  # a chat call's answer: the reply, usage, credits
            row["response"] = full["response"]
        if entry.kind == "chat":
            row["transcript"] = transcript(full["body"], full.get("response"))
    return row


def transcript(body: Any, response: Any) -> dict[str, Any]:
    """A chat call as the page shows it: each message sent (role and text; tool calls and tool
    results as short JSON), then the reply from the journal's ``chat.completion`` (None when
    the call was refused), why it finished, usage, the credits charged, whether it was
    streamed, and the fault that broke it, if any. Every text is plain text for the page."""
    sent = body.get("messages") if isinstance(body, dict) else None
    turns = [_turn(m) for m in sent if isinstance(m, dict)] if isinstance(sent, list) else []
    out: dict[str, Any] = {
        "model": body.get("model") if isinstance(body, dict) else None,
        "messages": turns,
        "reply": None,
    }
    completion = response.get("completion") if isinstance(response, dict) else None
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict) and isinstance(response, dict):
        message = choice.get("message")
        reply = _turn(message) if isinstance(message, dict) else {"role": "assistant"}
        out["reply"] = {"text": None, "tool_calls": [], **reply}
        out.update(
            finish_reason=choice.get("finish_reason"),
            usage=completion.get("usage") if isinstance(completion, dict) else None,
            credits=response.get("charged"),
            stream=response.get("stream"),
            fault=response.get("fault"),
            cut=response.get("cut"),
        )
    return out


def _turn(message: dict[str, Any]) -> dict[str, Any]:
    """One message sent: its role, its text, and its tool calls or tool result id."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        text = content
    elif isinstance(content, list) and all(isinstance(p, dict) for p in content):
        text = content_text(content) or _compact(content)
    else:
        text = _compact(content)
    turn: dict[str, Any] = {"role": str(message.get("role", "?")), "text": _cut(text)}
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        turn["tool_calls"] = [_call(c) for c in calls if isinstance(c, dict)]
    if message.get("tool_call_id") is not None:
        turn["tool_call_id"] = str(message["tool_call_id"])
    return turn


def _call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    arguments = function.get("arguments", "")
    return {
        "id": call.get("id"),
        "name": str(function.get("name", "")),
        "arguments": _cut(arguments if isinstance(arguments, str) else _compact(arguments)),
    }


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= TURN_CHARS:
        return text
    return text[:TURN_CHARS] + "…"


def _compact(value: Any) -> str:
    """``value`` as compact JSON text (non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _task_rows(emulator: Emulator, tasks: list[Task], now: float) -> list[dict[str, Any]]:
    scenarios = emulator.scenarios  # status words per key: scenarios may differ
    models = emulator.catalogue.models
    return [
        _task_row(task, now, scenarios.for_key(task.key).words, models.get(task.model))
        for task in tasks
    ]


def _task_row(task: Task, now: float, words: StatusWords, model: Model | None) -> dict[str, Any]:
    view = observe(task, now)
    done = view.state is State.SUCCEEDED
    kind = model.output.kind if model is not None else "image"
    duration = model.duration_s(task.params) if model is not None else 0.0
    files: list[str] = []
    if done:  # the URLs of the task's output, as a poll gives them, on the page's own route
        output = task_data(task, view, "", words, model)["output"] or {}
        urls = output.get(model.output.urls_field if model is not None else "image_urls", [])
        files = [IMAGES + "/" + url.removeprefix(FILES_PREFIX) for url in urls]
    return {
        "id": task.id,
        "model": task.model,
        "key": task.key,
        "route": model.route.name if model is not None else "images",
        "label": _label(model),
        "kind": kind,
        "format": model.file_ext(task.params) if model is not None else "png",
        "prompt": _prompt(task, model)[:PROMPT_CHARS],
        "size": f"{task.width}x{task.height}" if task.width and task.height else None,
        "duration_s": duration or None,
        "status": words[view.state],
        "state": view.state.value,
        "terminal": view.state.terminal,
        "progress": view.progress,
        "created_at": iso(task.created_at),
        "updated_at": iso(view.updated_at),
        "elapsed_s": round(max(0.0, view.updated_at - task.created_at), 3),
        "credits": task.credits,
        "credits_consumed": task.credits if done else 0,
        "error": (view.error or _failure(model)) if view.state is State.FAILED else None,
        "polls": task.polls,
        "files": files,
    }


def _label(model: Model | None) -> str:
    """What the page calls a task's route: image, video, speech (or another audio route's
    name), tool (an image tool)."""
    if model is None:
        return "image"
    route = model.route
    if route.output.kind == "image":
        return "image" if route.name == "images" else "tool"
    if route.output.kind == "audio":
        return route.name
    return route.output.kind


def _prompt(task: Task, model: Model | None) -> str:
    """The task's prompt; for speech, which has none, the text it says (dialogue lines
    joined by " / ")."""
    if task.prompt or model is None:
        return task.prompt
    said: list[str] = []
    for name in model.text_fields:
        outer, _, inner = name.partition(".")
        value = task.params.get(outer)
        if inner and isinstance(value, list):
            said += [str(item.get(inner, "")) for item in value if isinstance(item, dict)]
        elif isinstance(value, str):
            said.append(value)
    return " / ".join(text for text in said if text)


def _failure(model: Model | None) -> str:
    return model.route.failure if model is not None else DEFAULT_FAILURE


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


routes = [
    Route("/_emulator", to_page, methods=["GET"]),
    Route("/_emulator/", page, methods=["GET"]),
    Route("/_emulator/ui/feed", feed, methods=["GET"]),
    Route("/_emulator/ui/requests/{seq}", request_detail, methods=["GET"]),
    Route(IMAGES + "/{task_id}/{name}", task_file, methods=["GET"]),
    Route("/_emulator/ui/{name}", asset, methods=["GET"]),
]
