"""The emulated endpoints of https://apiin.one: create a task, poll it, download its images.

These three paths are the hot path of every client's test suite, so :class:`API` serves them
straight from the ASGI scope, ahead of Starlette's router and middleware (which cost more than
a poll's own work); everything else (control API, docs, unknown paths) goes on to Starlette.
Each handler reads as a straight line: authenticate, parse, let the scenario decide (latency,
error, fault), then do the work and return the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from .engine import Decision, ScenarioRuntime, as_api_error
from .engine import Request as RuleRequest
from .errors import APIError, InvalidRequest, MethodNotAllowed, NotFound, error_body
from .faults import FaultResponse, NetworkFault
from .http import dumps, load_object, read_json_body
from .service import Emulator
from .tasks import State
from .validation import validate_create

__all__ = ["API", "CREATE_PATH", "SCENARIO_HEADER", "Call", "Reply", "reply", "route"]

SCENARIO_HEADER = b"x-emulator-scenario"
CREATE_PATH = "/api/v1/images/generations"
TASKS_PREFIX = "/api/v1/tasks/"
FILES_PREFIX = "/files/"
#: status the journal records for a request whose client went away before it was answered
CLIENT_GONE = 499


class Call:
    """One request to an emulated endpoint: its headers (first value wins, as in Starlette)
    and what the journal records about it."""

    __slots__ = (
        "_headers", "body", "json_body", "key", "raw_headers", "receive", "rule", "scope",
        "task_id",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.raw_headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        self._headers: dict[str, str] | None = None
        self.key: str | None = None
        self.body: str | None = None  # a body that is not a JSON object, as text
        self.json_body: str | None = None  # a JSON object body, as the text that was sent
        self.task_id: str | None = None
        self.rule: str | None = None

    def header(self, name: bytes) -> str | None:
        """One header (lower-case ``name``) as text, or None."""
        value = self.raw_headers.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def headers(self) -> dict[str, str]:
        """Every header as text, for scenario rules (decoded on first use only)."""
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1")
                             for k, v in self.raw_headers.items()}  # fmt: skip
        return self._headers

    def base_url(self) -> str:
        """Where the client reached us (from the Host header, as the client wrote it)."""
        host = self.header(b"host")
        if not host:
            server = self.scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else server[0]
        return f"{self.scope['scheme']}://{host}"


class Reply(NamedTuple):
    """A complete response. On the hot path, built with :func:`reply` (same result)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def reply(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> Reply:
    """``Reply(status, body, headers)`` without NamedTuple's Python-level ``__new__``
    (0.4 us less, on every request)."""
    return _new_tuple(Reply, (status, body, headers))  # type: ignore[no-any-return]


_new_tuple = tuple.__new__


Answer = Reply | FaultResponse
Handler = Callable[..., Awaitable[Answer]]


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = dumps(data)
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return _new_tuple(Reply, (status, body, raw))  # type: ignore[no-any-return]


# -- the endpoints ------------------------------------------------------------------------


async def create_generation(emulator: Emulator, call: Call) -> Answer:
    headers = call.raw_headers  # (header values as bytes: decoded only when unusual)
    key = call.key = emulator.authenticate(headers.get(b"authorization"))
    raw = await read_json_body(
        headers.get(b"content-type"), headers.get(b"content-length"), call.receive,
        emulator.config.max_body_bytes,
    )  # fmt: skip
    try:
        body, text = load_object(raw)
    except InvalidRequest:
        call.body = raw[:4096].decode("utf-8", "replace")
        raise
    call.json_body = text
    runtime = _runtime(emulator, call, key)
    decision = runtime.plain or runtime.decide(RuleRequest("create", key, call.headers, body))
    if decision is not runtime.plain and (early := await _apply(call, decision)) is not None:
        return early  # (a plain decision has nothing to apply: no coroutine for it)
    validated = validate_create(body, emulator.catalogue, strict=runtime.scenario.strict)
    task = emulator.create_task(
        key, validated, effect=decision.task, runtime=runtime, base_url=call.base_url
    )
    call.task_id = task.id
    status = runtime.status_words(emulator.status_words)[State.QUEUED]
    return _answer(
        decision,
        {"code": 200, "message": "success", "data": {"task_id": task.id, "status": status}},
    )


async def get_task(emulator: Emulator, call: Call, task_id: str) -> Answer:
    key = call.key = emulator.authenticate(call.raw_headers.get(b"authorization"))
    call.task_id = task_id[:200]
    task = emulator.find(key, task_id)
    runtime = _runtime(emulator, call, key)
    decision = runtime.plain or runtime.decide(
        RuleRequest("task", key, call.headers, model=task.model)
    )
    if decision is not runtime.plain and (early := await _apply(call, decision)) is not None:
        return early  # (a plain decision has nothing to apply: no coroutine for it)
    view = emulator.tasks.poll(task, emulator.clock.now())
    words = runtime.status_words(emulator.status_words)
    data = emulator.task_body(task, view, call.base_url(), words)
    return _answer(decision, {"code": 200, "message": "success", "data": data})


async def get_image(emulator: Emulator, call: Call, task_id: str, name: str) -> Answer:
    call.task_id = task_id[:200]
    index_text, _, ext = name.partition(".")
    if ext != "png" or not index_text.isdigit() or len(index_text) > 3:
        raise NotFound(
            f"No image at this URL: expected /files/{{task_id}}/{{n}}.png, got {name[:80]!r}"
        )
    task = emulator.tasks.get(task_id)
    key = task.key if task is not None else None
    runtime = _runtime(emulator, call, key)
    model = task.model if task is not None else None
    decision = runtime.plain or runtime.decide(RuleRequest("image", key, call.headers, model=model))
    if decision is not runtime.plain and (early := await _apply(call, decision)) is not None:
        return early  # (a plain decision has nothing to apply: no coroutine for it)
    image = emulator.image(task_id, int(index_text))
    headers = [(b"etag", image.etag.encode()), (b"cache-control", b"public, max-age=3600")]
    if call.header(b"if-none-match") == image.etag:
        return reply(304, b"", headers)
    if decision.fault is not None:
        return FaultResponse(decision.fault, image.body, options=decision.fault_options,
                             media_type="image/png")  # fmt: skip
    headers += [(b"content-type", b"image/png"), (b"content-length", b"%d" % len(image.body))]
    body = b"" if call.scope["method"] == "HEAD" else image.body
    return reply(200, body, headers)


def _runtime(emulator: Emulator, call: Call, key: str | None) -> ScenarioRuntime:
    name = call.raw_headers.get(SCENARIO_HEADER)
    return emulator.runtime_for(key, name.decode("latin-1") if name else None)


async def _apply(call: Call, decision: Decision) -> FaultResponse | None:
    """Latency, then an injected HTTP error, before any work is done; a reset or a hang
    happens before the request is processed (nothing is created)."""
    if decision.rule is not None:
        call.rule = decision.rule
    if decision.latency_s > 0:
        await asyncio.sleep(decision.latency_s)
    if decision.error is not None:
        raise as_api_error(decision.error)
    if decision.fault in ("reset", "hang"):
        return FaultResponse(decision.fault, b"", options=decision.fault_options)
    return None


def _answer(decision: Decision, data: Any) -> Answer:
    if decision.fault is None:
        return json_reply(data)
    return FaultResponse(decision.fault, dumps(data), options=decision.fault_options)


# -- routing and serving ------------------------------------------------------------------


class Endpoint(NamedTuple):
    handler: Handler
    methods: frozenset[str]
    allow: str  # the Allow header of a 405


def _endpoint(handler: Handler, *methods: str) -> Endpoint:
    return Endpoint(handler, frozenset(methods), ", ".join(methods))


CREATE = _endpoint(create_generation, "POST")
TASK = _endpoint(get_task, "GET", "HEAD")
IMAGE = _endpoint(get_image, "GET", "HEAD")


def route(path: str) -> tuple[Endpoint, tuple[str, ...]] | None:
    """The endpoint serving ``path`` and its path parameters (None: not an emulated path).
    Parameters match one non-empty path segment each, like Starlette's ``{name}``."""
    if path == CREATE_PATH:
        return CREATE, ()
    if path.startswith(TASKS_PREFIX):
        task_id = path[len(TASKS_PREFIX) :]
        if task_id and "/" not in task_id:
            return TASK, (task_id,)
    elif path.startswith(FILES_PREFIX):
        task_id, _, name = path[len(FILES_PREFIX) :].partition("/")
        if task_id and name and "/" not in name:
            return IMAGE, (task_id, name)
    return None


class API:
    """Serves the emulated endpoints: runs the handler, sends its answer or the error
    envelope, and journals the request."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def serve(
        self, endpoint: Endpoint, params: tuple[str, ...], scope: Scope, receive: Receive,
        send: Send,
    ) -> None:  # fmt: skip
        started = time.perf_counter()
        call = Call(scope, receive)
        status = 500  # what the journal records when no response starts (a reset, a hang)
        responded = False
        error: str | None = None
        try:
            method = scope["method"]
            if method not in endpoint.methods:
                raise MethodNotAllowed(
                    f"Method {method} is not allowed on {scope['path'][:200]!r}. "
                    f"Allowed: {endpoint.allow}",
                    headers={"Allow": endpoint.allow},
                )
            answer = await endpoint.handler(self.emulator, call, *params)
            if type(answer) is Reply:
                status, responded = answer.status, True
                await _send(send, answer)
            else:  # a scripted network fault: an ASGI app that misbehaves on the wire

                async def send_fault(message: Message) -> None:
                    nonlocal status, responded
                    if message["type"] == "http.response.start":
                        status, responded = message["status"], True
                    await send(message)

                await answer(scope, receive, send_fault)
        except APIError as exc:
            status, error = exc.status, exc.message
            await _send(send, json_reply(exc.body(), exc.status, exc.headers))
        except ClientDisconnect:
            status = CLIENT_GONE
        except NetworkFault:  # in-process, a scripted reset raises into the caller
            raise
        except Exception as exc:
            self.emulator.record_server_error(exc)
            error = server_error_message(exc)
            if not responded:
                status = 500
                await _send(send, json_reply(error_body(500, error, "server_error"), 500))
            raise
        finally:
            self.emulator.journal_request(  # positional: keywords cost more, every request
                scope, status, started, call.key, call.body, call.json_body, error, call.task_id,
                call.rule,
            )  # fmt: skip


async def _send(send: Send, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body})


def server_error_message(exc: BaseException) -> str:
    return (
        f"Internal emulator error ({type(exc).__name__}). This is a bug in the emulator; "
        "the traceback is in the server log and in /_emulator/health."
    )
