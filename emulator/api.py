"""The emulated endpoints of https://apiin.one: create a task (on any create route of the
catalogue: images, videos, speech, image tools, music), poll it, download its files; the rest
of the Suno suite (feed, extend, covers, lyrics) is routed here and served by
:mod:`emulator.music`, loaded on its first call.

These paths are the hot path of every client's test suite, so :class:`API` serves them
straight from the ASGI scope, ahead of Starlette's router and middleware (which cost more than
a poll's own work); everything else (control API, docs, unknown paths) goes on to Starlette.

Every request goes through the same checks in the same order: the route (404, 405), the API
key (401), the scenario (its latency, error or fault), then the request itself (400, 404). So a
scenario's outage answers a bad body or an unknown task too, and a bad key is told so first.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from .catalogue import Catalogue
from .clock import iso
from .cors import Cors, is_preflight
from .engine import Decision, Request, ScenarioRuntime, as_api_error
from .errors import APIError, InvalidRequest, method_not_allowed, server_error, task_not_found
from .faults import FaultResponse, NetworkFault
from .http import load_object, read_json_body
from .journal import Entry, redact
from .media import file_name
from .music.wire import MUSIC_PATHS, SUNO_ERROR_TYPES
from .ranges import file_reply
from .service import Emulator
from .tasks import Task, TaskScript, observe
from .validation import validate_create
from .wire import (
    FILES_PREFIX,
    SCENARIO_HEADER,
    TASKS_PREFIX,
    Reply,
    created,
    dumps,
    json_reply,
    send_reply,
    success,
)

__all__ = [
    "API", "CLIENT_GONE", "Answer", "Call", "EarlyFault", "Endpoint", "answer", "decide",
    "fixed_routes", "read_json_call", "route", "runtime_of",
]  # fmt: skip

#: status the journal records for a request whose client went away before it was answered
CLIENT_GONE = 499
#: scripted faults that answer nothing at all: the request is not processed
EARLY_FAULTS = frozenset({"reset", "hang"})


#: base URLs by scheme and Host header, so the tasks that keep one (a finished task keeps its
#: file URLs) share one string per host
_BASE_URLS: dict[tuple[str, bytes], str] = {}
MAX_BASE_URLS = 64


class Call:
    """One request to an emulated endpoint: its headers (first value wins, as in Starlette)
    and what the journal records about it."""

    __slots__ = (
        "_headers", "body", "json", "key", "raw_headers", "receive", "rule", "runtime",
        "scope", "started", "task_id",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.started = time.perf_counter()
        self.scope = scope
        self.receive = receive
        self.raw_headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))
        self._headers: dict[str, str] | None = None
        self.key: str | None = None
        #: the body as the text that was sent, and whether it is a JSON object
        self.body: str | None = None
        self.json = False
        self.task_id: str | None = None
        self.rule: str | None = None
        self.runtime: ScenarioRuntime | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Every header as text, for scenario rules (decoded on first use only)."""
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1")
                             for k, v in self.raw_headers.items()}  # fmt: skip
        return self._headers

    def base_url(self) -> str:
        """Where the client reached us (from the Host header, as the client wrote it)."""
        scheme, host = self.scope["scheme"], self.raw_headers.get(b"host")
        if not host:
            name, port = self.scope.get("server") or ("localhost", None)
            return f"{scheme}://{name}:{port}" if port else f"{scheme}://{name}"
        url = _BASE_URLS.get((scheme, host))
        if url is None:
            url = f"{scheme}://{host.decode('latin-1')}"
            if len(_BASE_URLS) < MAX_BASE_URLS:  # (a client inventing Host headers: not kept)
                _BASE_URLS[scheme, host] = url
        return url

    def entry(
        self, seq: int, status: int, error: str | None, at: float, kind: str = "request",
        response: str | None = None,
    ) -> Entry:  # fmt: skip
        """The journal's record of this request, answered with ``status`` (and ``response``,
        the answer as JSON text, where it matters to a reader: chat)."""
        scope = self.scope
        method = sys.intern(scope["method"])  # (one string, not one per entry: uvicorn's is new)
        return Entry._make((
            seq, method, scope["path"], scope["query_string"].decode("latin-1"), self.key,
            self.body, self.json, status, error, self.task_id, self.rule, at,
            time.time(), time.perf_counter() - self.started, kind, None, False, response,
        ))  # fmt: skip


class EarlyFault(Exception):
    """A scripted fault that answers nothing (reset, hang), raised before any work."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.fault)
        self.response = FaultResponse(str(decision.fault), b"", options=decision.fault_options)


Answer = Reply | FaultResponse
Handler = Callable[..., Awaitable[Answer]]


# -- the endpoints ------------------------------------------------------------------------


async def create_generation(emulator: Emulator, call: Call, route: str = "images") -> Answer:
    key, body, decision = await read_json_call(emulator, call, "create", route)
    runtime = runtime_of(call)
    request = validate_create(
        body, emulator.catalogue, strict=runtime.scenario.strict,
        route=emulator.catalogue.routes[route],
    )  # fmt: skip
    form = runtime.scenario.answers.get(route, "task")
    script = INSTANT if form in FINISHED_FORMS else None
    task = emulator.create_task(
        key, request, script, effect=decision.task, runtime=runtime, base_url=call.base_url
    )
    call.task_id = task.id
    if form == "task":
        return answer(decision, created(task.id, runtime.words))
    return await _answer_at_once(emulator, call, task, form, decision)


#: a task that ends as it is created (a scenario's ``answers`` asks for it at once)
INSTANT = TaskScript(0.0, 0.0)
FINISHED_FORMS = frozenset({"finished", "audio"})


async def _answer_at_once(
    emulator: Emulator, call: Call, task: Task, form: str, decision: Decision
) -> Answer:
    """A create answered in another form than the task to poll (a scenario's ``answers``):
    the finished task body, its audio bytes, or the bare create answer of an older page."""
    if form == "bare":
        return answer(decision, {"task_id": task.id, "status": "pending", "model": task.model,
                                  "created_at": iso(task.created_at)})  # fmt: skip
    emulator.settle()  # it has ended: spent, and its webhook started
    if form == "audio":
        file = await emulator.file(task.id, 0)
        headers = [(b"content-type", file.media_type.encode()),
                   (b"content-length", b"%d" % len(file.body))]  # fmt: skip
        return Reply(200, file.body, headers)
    view = observe(task, emulator.clock.now())
    return answer(decision, success(emulator.task_body(task, view, call.base_url(),
                                                        runtime_of(call).words)))  # fmt: skip


async def get_task(emulator: Emulator, call: Call, task_id: str) -> Answer:
    key = call.key = emulator.authenticate(call.raw_headers.get(b"authorization"))
    task = emulator.lookup(key, task_id)
    call.task_id = task_id[:200] if task is None else task.id  # (the journal: one copy of an id)
    decision = await decide(emulator, call, "task", key, model=task.model if task else None,
                             task=task)  # fmt: skip
    if task is None:
        raise task_not_found(task_id)
    view = emulator.poll(task)
    data = emulator.task_body(task, view, call.base_url(), runtime_of(call).words)
    return answer(decision, success(data))


async def get_file(emulator: Emulator, call: Call, task_id: str, name: str) -> Answer:
    """A finished task's file (image, video, clip): 200, or 206 for a Range, 304, 416."""
    task = emulator.tasks.peek(task_id)  # whose it is, for the scenario (file() settles)
    call.task_id = task_id[:200] if task is None else task.id
    owner, model = (task.key, task.model) if task is not None else (None, None)
    decision = await decide(emulator, call, "image", owner, model=model, task=task)
    index, ext = file_name(name)
    file = await emulator.file(task_id, index, ext)
    reply = file_reply(
        call.scope["method"], call.raw_headers, file.body, file.etag,
        file.media_type.encode(), _FILE_HEADERS,
    )  # fmt: skip
    if decision.fault is not None and reply.status in (200, 206):
        return FaultResponse(decision.fault, reply.body, options=decision.fault_options,
                             media_type=file.media_type, status_code=reply.status)  # fmt: skip
    return reply


_FILE_HEADERS = ((b"cache-control", b"public, max-age=3600"),)


async def read_json_call(
    emulator: Emulator, call: Call, endpoint: str, route: str | None = None
) -> tuple[str, dict[str, Any], Decision]:
    """The key, the JSON object body and the scenario's decision of a POST to ``endpoint``
    (create, chat), checked in the module's order: the key (401), the body's media type and
    size (415, 413), the scenario, then the JSON itself (400)."""
    headers = call.raw_headers  # (header values as bytes: decoded only when unusual)
    key = call.key = emulator.authenticate(headers.get(b"authorization"))
    raw = await read_json_body(
        headers.get(b"content-type"), headers.get(b"content-length"), call.receive,
        emulator.config.max_body_bytes,
    )  # fmt: skip
    try:
        body, text = load_object(raw)
        call.body = redact(text)
    except InvalidRequest:  # answered after the scenario has had its say
        call.body = redact(raw[:4096].decode("utf-8", "replace"))
        await decide(emulator, call, endpoint, key, route=route)
        raise
    call.json = True
    return key, body, await decide(emulator, call, endpoint, key, body=body, route=route)


async def decide(
    emulator: Emulator,
    call: Call,
    endpoint: str,
    key: str | None,
    body: dict[str, Any] | None = None,
    model: str | None = None,
    route: str | None = None,
    task: Task | None = None,
) -> Decision:
    """What the scenario does to this request, applied: its latency is waited out, its error
    raised, a fault that answers nothing raised as :class:`EarlyFault`. The decision is
    returned for what is left (a task effect, a fault on the answer). ``route`` is what rules
    match (a create's; else that of ``task``, looked up only when a rule may need it)."""
    runtime = emulator.scenarios.for_request(key, call.raw_headers.get(SCENARIO_HEADER))
    if runtime is None:  # the server's scenario file is due for a check (a worker thread)
        runtime = await emulator.scenarios.refresh()
    call.runtime = runtime
    if runtime.plain is not None:  # no rules, no latency: nothing to decide
        return runtime.plain
    if route is None and task is not None:  # a poll's or download's: its task's route
        route = _route_of(emulator, task)
    decision = runtime.decide(Request(endpoint, key, call.headers, body, model, route))
    call.rule = decision.rule
    if decision.latency_s > 0:
        await asyncio.sleep(decision.latency_s)
    if decision.error is not None:
        raise as_api_error(decision.error)
    if decision.fault in EARLY_FAULTS:
        raise EarlyFault(decision)
    return decision


def _route_of(emulator: Emulator, task: Task | None) -> str | None:
    """The catalogue route of a task's model (what a rule's ``route`` matches)."""
    model = emulator.catalogue.models.get(task.model) if task is not None else None
    return model.route.name if model is not None else None


def runtime_of(call: Call) -> ScenarioRuntime:
    """The scenario that decided ``call`` (set by :func:`decide`)."""
    assert call.runtime is not None, "the scenario decides before the work is done"
    return call.runtime


def answer(decision: Decision, data: Any) -> Answer:
    """``data`` as a JSON reply, or inside the scripted fault the decision carries."""
    if decision.fault is None:
        return json_reply(data)
    return FaultResponse(decision.fault, dumps(data), options=decision.fault_options)


# -- routing and serving ------------------------------------------------------------------


class Endpoint(NamedTuple):
    handler: Handler
    methods: frozenset[str]
    allow: str  # the Allow header of a 405
    #: what scenario rules and journal queries call it: create, task or image
    kind: str
    #: error ``type`` by status where the route has its own (Suno's 400 ``bad_request``)
    error_types: Mapping[int, str] = {}


def _endpoint(
    handler: Handler, kind: str, *methods: str, error_types: Mapping[int, str] | None = None
) -> Endpoint:
    return Endpoint(handler, frozenset(methods), ", ".join(methods), kind, error_types or {})


async def music(emulator: Emulator, call: Call, operation: str) -> Answer:
    """A Suno route other than generate (feed, extend, covers, lyrics): emulator/music."""
    from .music.handlers import HANDLERS

    return await HANDLERS[operation](emulator, call)


CREATE = _endpoint(create_generation, "create", "POST")
TASK = _endpoint(get_task, "task", "GET", "HEAD")
IMAGE = _endpoint(get_file, "image", "GET", "HEAD")
Routes = Mapping[str, tuple[Endpoint, tuple[str, ...]]]


def fixed_routes(catalogue: Catalogue) -> dict[str, tuple[Endpoint, tuple[str, ...]]]:
    """The endpoint and parameters of every fixed path: each create route of ``catalogue``
    (those its generic create serves), then the Suno suite's other routes."""
    out: dict[str, tuple[Endpoint, tuple[str, ...]]] = {}
    for r in catalogue.routes.values():
        if r.served_by is None:
            endpoint = CREATE if not r.error_types else _endpoint(
                create_generation, "create", "POST", error_types=r.error_types
            )  # fmt: skip
            out[r.path] = (endpoint, (r.name,))
    for path, (operation, kind, methods) in MUSIC_PATHS.items():
        out[path] = (_endpoint(music, kind, *methods, error_types=SUNO_ERROR_TYPES), (operation,))
    return out


#: the fixed paths of the shipped catalogue (an API with another catalogue routes its own:
#: :meth:`API.route`)
DEFAULT_CREATES = fixed_routes(Catalogue.default())


def route(path: str, creates: Routes = DEFAULT_CREATES) -> tuple[Endpoint, tuple[str, ...]] | None:
    """The endpoint serving ``path`` and its path parameters (None: not an emulated path).
    Parameters match one non-empty path segment each, like Starlette's ``{name}``."""
    fixed = creates.get(path)
    if fixed is not None:
        return fixed
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

    def __init__(self, emulator: Emulator, cors: Cors | None = None) -> None:
        self.emulator = emulator
        self.cors = cors or Cors()
        self.creates = fixed_routes(emulator.catalogue)

    def route(self, path: str) -> tuple[Endpoint, tuple[str, ...]] | None:
        """:func:`route`, with this emulator's catalogue's create routes."""
        return route(path, self.creates)

    async def serve(
        self, endpoint: Endpoint, params: tuple[str, ...], scope: Scope, receive: Receive,
        send: Send,
    ) -> None:  # fmt: skip
        call = Call(scope, receive)
        origin = call.raw_headers.get(b"origin")
        if origin is not None:  # a browser's request: CORS
            if is_preflight(scope, call.raw_headers):
                await self.cors.preflight(call.raw_headers, send, origin)
                return
            send = self.cors.wrap(send, origin)
        status = 500  # what the journal records when no response starts (a reset, a hang)
        responded = False
        error: str | None = None
        try:
            method = scope["method"]
            if method not in endpoint.methods:
                raise method_not_allowed(method, scope["path"], endpoint.allow)
            answer = await endpoint.handler(self.emulator, call, *params)
            if isinstance(answer, Reply):
                status, responded = answer.status, True
                await send_reply(send, answer)
            else:
                status = await _send_fault(answer, scope, receive, send, status)
        except APIError as exc:
            status, error = exc.status, exc.message
            await send_reply(send, exc.reply(endpoint.error_types))
        except EarlyFault as fault:
            status = await _send_fault(fault.response, scope, receive, send, status)
        except ClientDisconnect:
            status = CLIENT_GONE
        except NetworkFault:  # in-process, a scripted reset raises into the caller
            raise
        except Exception as exc:
            self.emulator.record_server_error(exc)
            bug = server_error(exc)
            error = bug.message
            if not responded:
                await send_reply(send, bug.reply())
            raise
        finally:
            journal = self.emulator.journal
            journal.append(call.entry(journal.next_seq(), status, error, self.emulator.clock.now()))


async def _send_fault(
    fault: FaultResponse, scope: Scope, receive: Receive, send: Send, status: int
) -> int:
    """Run a scripted network fault (an ASGI app that misbehaves on the wire); the status it
    started a response with, else ``status``."""
    started = status

    async def watch(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = message["status"]
        await send(message)

    await fault(scope, receive, watch)
    return started
