"""``aio-emulator verify``: run the contract checks against any server that claims to be the API.

Probes the target (the real https://apiin.one or another emulator) with a fixed, costed plan and
compares each observation with what this emulator answers (its defaults, optionally overlaid
with a scenario's status words). Standard library only (urllib), so it runs wherever the
emulator is installed.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from .catalogue import Catalogue, Model
from .chat.reply import Completion
from .chat.usage import Usage, chat_model, credits_for, message_tokens
from .chat.wire import DONE, Meta, chunks, completion_body, frame, wrapped
from .scenarios import Scenario, load
from .tasks import State
from .wire import DEFAULT_STATUS_WORDS, ERROR_TYPES, task_path

__all__ = ["Check", "Report", "VerifyError", "plan", "run_verify", "scenario_from_report"]

PROMPT = "A small red square on a white background (aio-emulator verify probe)"
UNKNOWN_MODEL = "no-such-model-aio-verify"
BAD_KEY = "invalid_key_from_aio_emulator_verify"
#: data fields of a task body and their JSON types ([choice] in the contract)
TASK_FIELDS: Mapping[str, tuple[str, ...]] = {
    "task_id": ("string",),
    "model": ("string",),
    "status": ("string",),
    "progress": ("integer",),
    "created_at": ("string",),
    "updated_at": ("string",),
    "output": ("object", "null"),
    "error": ("string", "null"),
    "credits_consumed": ("integer",),
}
AGREE, DIFFER, UNVERIFIED, INFO = "agree", "DIFFER", "unverified", "info"
CHAT_PATH = "/api/v1/chat/completions"
#: the chat probe's messages: a short answer (1 credit on the emulator)
CHAT_MESSAGES = [{"role": "user", "content": "Say hello (aio-emulator verify probe)"}]
#: the prefix of a chat answer's ``id`` (the emulator's ``chatcmpl_`` + hex)
CHAT_ID = re.compile(r"(chatcmpl)[_-]")


class VerifyError(RuntimeError):
    """The run cannot start (bad model, over budget, not confirmed); exit status 2."""


@dataclass(slots=True)
class Check:
    """One line of the report: what the emulator expects, what the server did."""

    name: str
    expected: Any
    observed: Any
    verdict: str
    note: str = ""


@dataclass(slots=True)
class Report:
    base_url: str
    model: str
    checks: list[Check] = field(default_factory=list)
    #: raw observations, for --write-scenario
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def differences(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == DIFFER]

    def add(self, name: str, expected: Any, observed: Any, note: str = "") -> Check:
        check = Check(name, expected, observed, AGREE if expected == observed else DIFFER, note)
        self.checks.append(check)
        return check

    def render(self) -> str:
        rows = [("check", "expected (emulator)", "observed (server)", "verdict")]
        for c in self.checks:
            expected, observed = _pair(c.expected, c.observed)
            rows.append((c.name, expected, observed, c.verdict))
        widths = [min(48, max(len(r[i]) for r in rows)) for i in range(4)]
        lines = [f"verify {self.base_url} (model {self.model})", ""]
        for i, row in enumerate(rows):
            cells = [
                (v if len(v) <= w else v[: w - 1] + "~").ljust(w)
                for v, w in zip(row, widths, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [f"- {c.name}: {c.note}" for c in self.checks if c.note]
        if notes:
            lines += ["", "notes:", *notes]
        n = len(self.differences)
        lines += ["", f"{n} difference(s)" if n else "the server agrees with the emulator"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "checks": [
                {
                    "name": c.name,
                    "expected": c.expected,
                    "observed": c.observed,
                    "verdict": c.verdict,
                    "note": c.note,
                }
                for c in self.checks
            ],
            "observed": self.observed,
        }


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pair(expected: Any, observed: Any) -> tuple[str, str]:
    """Both sides for the table; of two objects, only the keys where they differ."""
    if isinstance(expected, dict) and isinstance(observed, dict):
        keys = [k for k in {**expected, **observed} if expected.get(k) != observed.get(k)]
        if not keys:
            return f"{len(expected)} fields as listed", "same"
        return (
            ", ".join(f"{k}: {_show(expected.get(k, 'absent'))}" for k in keys),
            ", ".join(f"{k}: {_show(observed.get(k, 'absent'))}" for k in keys),
        )
    return _show(expected), _show(observed)


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    credits: int
    worst_credits: int


#: a probe value for each kind of required field (the probe's URLs are never fetched by the
#: emulator; a real server fetches them, so the probe image is a public placeholder)
PROBE_URL = "https://apiin.one/favicon.png"
_PROBE_VALUES: dict[str, Any] = {
    "url": PROBE_URL,
    "url_list": [PROBE_URL],
    "object_list": [{"text": PROMPT}],
}


def probe_model(catalogue: Catalogue, name: str) -> Model:
    """The model ``name`` names, on any route, if the probe can make a body for it."""
    model = catalogue.resolve(name)
    if model is None:
        raise VerifyError(f"--model {name!r} is not a known model: {', '.join(catalogue.names())}")
    odd = [n for n in _probe_fields(model)
           if n != "prompt" and model.fields[n].kind not in _PROBE_VALUES]  # fmt: skip
    if odd:
        raise VerifyError(
            f"--model {model.id} needs {', '.join(odd)}: pick a model the probe can fill in "
            "(e.g. cogview-4, kling-3, elevenlabs-v3, bg-remover)"
        )
    return model


def _probe_fields(model: Model) -> list[str]:
    """The fields a valid body must have: the required ones, the first of a one-of rule, the
    field a rule requires unless a flag is set (kling-3's prompt)."""
    names = [f.name for f in model.fields.values() if f.required]
    for check in model.checks:
        if check["check"] == "one_of":
            names.append(check["fields"][0])
        elif check["check"] == "required_unless":
            names.append(check["field"])
    return names


def probe_body(model: Model) -> dict[str, Any]:
    """The smallest valid body for ``model``: the fields it must have, filled with probe
    values; everything else left to the defaults."""
    return {
        "model": model.id,
        **{n: PROMPT if n == "prompt" else _PROBE_VALUES[model.fields[n].kind]
           for n in _probe_fields(model)},
    }  # fmt: skip


def _defaults(model: Model) -> dict[str, Any]:
    return {f.name: f.default for f in model.fields.values() if f.default is not None}


def _cost(model: Model) -> int:
    body = probe_body(model)
    params = {**_defaults(model), **{k: v for k, v in body.items() if k != "model"}}
    return model.credits(params)


def _bad_field(model: Model) -> tuple[str, Any]:
    """A field and a value the contract rejects: an enum value that does not exist, else a
    number past its maximum, else a prompt too short, else a URL that is not one."""
    fields = list(model.fields.values())
    for spec in fields:
        if spec.kind == "enum":
            return spec.name, "not-a-valid-value"
    for spec in fields:
        if spec.kind in ("integer", "number") and spec.max is not None:
            return spec.name, spec.max + 1
    if "prompt" in model.fields:
        return "prompt", "ab"
    return next(s.name for s in fields if s.kind == "url"), "not-a-url"


def plan(model: Model, chat: bool = False) -> list[Step]:
    """The probes of a run and what each costs (expected, at most)."""
    cost = _cost(model)
    name, _ = _bad_field(model)
    steps = [
        Step("invalid API key (401 expected, nothing created)", 0, 0),
        Step("unknown model (400 expected)", 0, 0),
        Step(f"invalid {name} (400 expected; costs if the server accepts it)", 0, cost),
        Step("malformed JSON body (400 expected)", 0, 0),
        Step("unknown task id (404 expected)", 0, 0),
        Step(f"one {model.id} generation with default fields, polled to its end", cost, cost),
    ]
    if chat:
        answer, reserve = _chat_cost(), chat_model().reserve_credits
        steps += [
            Step("chat: empty messages (400 expected)", 0, 0),
            Step("chat: one short answer, not streamed", answer, reserve),
            Step("chat: one short answer, streamed", answer, reserve),
        ]
    return steps


def _chat_cost() -> int:
    """Credits of the chat probe's answer on the emulator: its replies to it are well under
    100 tokens, so the formula's minimum (at most the model's reserve is charged)."""
    return credits_for(Usage(message_tokens(CHAT_MESSAGES), 0))


def render_plan(model: Model, base_url: str, max_credits: int, chat: bool = False) -> str:
    steps = plan(model, chat)
    lines = [f"Plan against {base_url} (model {model.id}):"]
    for i, step in enumerate(steps, 1):
        worst = f", up to {step.worst_credits}" if step.worst_credits != step.credits else ""
        lines.append(f"  {i}. {step.name}: {step.credits} credits{worst}")
    expected = sum(s.credits for s in steps)
    most = sum(s.worst_credits for s in steps)
    lines.append(f"Cost: {expected} credits expected, at most {most} (--max-credits {max_credits})")
    return "\n".join(lines)


# -- HTTP -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Http:
    """Tiny urllib client: every status is an answer, connection errors become status 0."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        key: str | None = None,
    ) -> Reply:
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Authorization": f"Bearer {key or self.api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, dict(response.headers), response.read(),
                             time.monotonic() - started)  # fmt: skip
        except urllib.error.HTTPError as exc:
            with exc:  # closes the connection (else: ResourceWarning)
                return Reply(exc.code, dict(exc.headers), exc.read(), time.monotonic() - started)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Reply(0, {}, str(reason).encode(), time.monotonic() - started)


# -- the checks -----------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _envelope(reply: Reply) -> str:
    """The error answer in a line: status and type, plus whatever breaks the envelope."""
    if reply.status == 0:
        return f"no answer ({reply.body[:80].decode(errors='replace')})"
    body = reply.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"{reply.status} without the error envelope: {reply.body[:60]!r}"
    text = f"{reply.status} {error.get('type')}"
    kinds = {k: _json_type(error.get(k)) for k in ("code", "message", "type")}
    wrong = [f"{k} is {v}" for k, v in kinds.items() if v != _ENVELOPE_TYPES[k]]
    if error.get("code") != reply.status and not wrong:
        wrong.append(f"code {error.get('code')}")
    return text + (f" ({', '.join(wrong)})" if wrong else "")


_ENVELOPE_TYPES = {"code": "integer", "message": "string", "type": "string"}


def _expected_envelope(status: int) -> str:
    return f"{status} {ERROR_TYPES[status]}"


def _error_check(report: Report, name: str, status: int, reply: Reply) -> None:
    observed = _envelope(reply)
    report.observed.setdefault("errors", {})[name] = observed
    report.add(f"error: {name}", _expected_envelope(status), observed)


def expected_words(scenario: Scenario | None) -> dict[str, str]:
    words = {state.value: word for state, word in DEFAULT_STATUS_WORDS.items()}
    if scenario is not None:
        words.update(scenario.status_words)
    return words


def run_verify(
    base_url: str,
    api_key: str,
    *,
    model: str = "cogview-4",
    scenario: Scenario | str | None = None,
    interval: float = 1.0,
    timeout: float = 180.0,
    catalogue: Catalogue | None = None,
    sleep: Callable[[float], None] = time.sleep,
    chat: bool = False,
) -> Report:
    """Run the whole plan (no budget check here: the CLI does it) and return the report;
    ``chat`` adds the chat probes."""
    catalogue = catalogue or Catalogue.default()
    target = probe_model(catalogue, model)
    if isinstance(scenario, str):
        scenario = load(scenario)
    words = expected_words(scenario)
    http = Http(base_url, api_key)
    report = Report(base_url, target.id)
    create = target.route.path

    good = probe_body(target)
    _error_check(report, "invalid API key", 401, http.call("POST", create, {}, key=BAD_KEY))
    unknown = http.call("POST", create, {"model": UNKNOWN_MODEL, "prompt": PROMPT})
    _error_check(report, "unknown model", 400, unknown)
    field_name, bad_value = _bad_field(target)
    bad = http.call("POST", create, {**good, field_name: bad_value})
    _error_check(report, f"invalid field ({field_name})", 400, bad)
    if bad.status == 200:
        report.checks[-1].note = "the server accepted the invalid value: a task was created"
    _error_check(
        report, "malformed JSON", 400, http.call("POST", create, raw=b'{"model": "cogview-4",')
    )
    missing = task_path(f"n{target.node}{'0' * 16}_{target.tag}")
    _error_check(report, "unknown task", 404, http.call("GET", missing))

    started = time.monotonic()
    created = http.call("POST", create, good)
    body = created.json()
    data = body.get("data") if isinstance(body, dict) else None
    report.add("create: HTTP status", 200, created.status)
    report.add(
        "create: envelope",
        {"code": 200, "message": "success", "data": ["status", "task_id"]},
        {
            "code": body.get("code") if isinstance(body, dict) else None,
            "message": body.get("message") if isinstance(body, dict) else None,
            "data": sorted(data) if isinstance(data, dict) else _json_type(data),
        },
    )
    if not isinstance(data, dict) or not isinstance(data.get("task_id"), str):
        report.checks.append(Check("poll", "a task to poll", "no task id", DIFFER))
        return report
    task_id = data["task_id"]
    pattern = rf"n{target.node}[0-9a-z]+_{target.tag}"
    report.add(
        "create: task id format",
        f"n{target.node}..._{target.tag}",
        f"n{target.node}..._{target.tag}" if re.fullmatch(pattern, task_id) else task_id,
    )
    first = data.get("status")
    _poll(report, http, task_id, target, words, first, started, interval, timeout, sleep)
    if chat:
        _chat_checks(report, http, scenario)
    return report


# -- chat -----------------------------------------------------------------------------------


def _chat_checks(report: Report, http: Http, scenario: Scenario | None) -> None:
    """The chat route: an error, one answer whole, one streamed. What is expected is what the
    emulator's own wire code builds (emulator/chat/wire.py), summed up the same way."""
    settings = scenario.chat if scenario is not None else None
    model = chat_model()
    meta = Meta("chatcmpl_" + "0" * 24, 0, model.upstream if settings and settings.wrapped
                else model.id)  # fmt: skip
    completion, usage = Completion("Hello there."), Usage(12, 3)
    credits = credits_for(usage, model)

    empty = http.call("POST", CHAT_PATH, {"model": model.id, "messages": []})
    _error_check(report, "chat: empty messages", 400, empty)

    probe: dict[str, Any] = {"model": model.id, "messages": CHAT_MESSAGES}
    whole = http.call("POST", CHAT_PATH, {**probe, "stream": False})
    body = completion_body(meta, completion, usage, credits)
    report.add("chat: HTTP status", 200, whole.status)
    observed = whole.json()
    report.add(
        "chat: completion fields and types",
        completion_shape(wrapped(body) if settings and settings.wrapped else body),
        completion_shape(observed),
    )
    answer = _unwrapped(observed)
    used = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(used, dict) and all(
        isinstance(used.get(k), int) for k in ("prompt_tokens", "completion_tokens")
    ):
        charged = credits_for(Usage(used["prompt_tokens"], used["completion_tokens"]), model)
        report.add("chat: credits_consumed for its usage", charged, answer.get("credits_consumed"))

    streamed = http.call("POST", CHAT_PATH, {**probe, "stream": True})
    events = b"".join(frame(c) for c in chunks(meta, completion, usage, credits,
                                               include_usage=False)) + DONE  # fmt: skip
    report.add("chat: streamed HTTP status", 200, streamed.status)
    report.add(
        "chat: stream of chunks",
        stream_shape("text/event-stream", events),
        stream_shape(_header(streamed, "content-type"), streamed.body),
    )


def _unwrapped(body: Any) -> Any:
    """A chat answer, out of the ``{code, message, data}`` form if it came in it."""
    if isinstance(body, dict) and "choices" not in body and isinstance(body.get("data"), dict):
        return body["data"]
    return body


def _header(reply: Reply, name: str) -> str:
    for key, value in reply.headers.items():
        if key.lower() == name:
            return value.split(";")[0].strip()
    return ""


def completion_shape(body: Any) -> dict[str, Any]:
    """A ``chat.completion`` object summed up: its keys with their JSON types, and the values
    the contract fixes (``object``, ``model``, the id's prefix, the message's role, the finish
    reason, the usage keys)."""
    if not isinstance(body, dict):
        return {"body": _json_type(body)}
    shape: dict[str, Any] = {k: _json_type(v) for k, v in body.items()}
    found = CHAT_ID.match(body["id"]) if isinstance(body.get("id"), str) else None
    shape["id"] = found.group(1) + "…" if found else shape.get("id", "missing")
    for name in ("object", "model"):
        if isinstance(body.get(name), str):
            shape[name] = body[name]
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict):
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        shape["choices[0]"] = sorted(choice)
        shape["choices[0].message.role"] = message.get("role")
        shape["choices[0].message.content"] = _json_type(message.get("content"))
        shape["choices[0].finish_reason"] = choice.get("finish_reason")
    usage = body.get("usage")
    if isinstance(usage, dict):
        shape["usage"] = {k: _json_type(v) for k, v in sorted(usage.items())}
    return shape


def stream_shape(media_type: str, events: bytes) -> dict[str, Any]:
    """A server-sent stream of chunks summed up: the media type, whether every event is a
    ``data:`` line, the last one ``[DONE]``, the chunks' ``object`` and keys, the first
    delta, the finish reason, the type of ``credits_consumed`` on the last chunk, whether the
    content pieces join into a text."""
    frames = [f for f in events.decode(errors="replace").split("\n\n") if f.strip()]
    datas = [f[6:] for f in frames if f.startswith("data: ")]
    parsed: list[Any] = []
    for text in datas[:-1] if datas[-1:] == ["[DONE]"] else datas:
        try:
            parsed.append(json.loads(text))
        except ValueError:
            parsed.append(None)
    objs = [c for c in parsed if isinstance(c, dict)]
    choices = [ch for c in objs for ch in c.get("choices") or () if isinstance(ch, dict)]
    deltas: list[dict[str, Any]] = [d for ch in choices if isinstance(d := ch.get("delta"), dict)]
    finishes = [ch.get("finish_reason") for ch in choices if ch.get("finish_reason")]
    text = "".join(d.get("content") or "" for d in deltas if isinstance(d.get("content"), str))
    return {
        "media type": media_type,
        "events are data lines": len(datas) == len(frames) > 0,
        "ends with [DONE]": datas[-1:] == ["[DONE]"],
        "chunks parse": len(objs) == len(parsed) > 0,
        "object": sorted({str(c.get("object")) for c in objs}),
        "keys": sorted({k for c in objs for k in c}),
        "first delta": sorted(deltas[0]) if deltas else None,
        "role": deltas[0].get("role") if deltas else None,
        "finish_reason": finishes[-1:],
        "credits_consumed (last chunk)": _json_type(objs[-1].get("credits_consumed"))
        if objs
        else "missing",
        "content": "text" if text else "none",
    }


def _poll(
    report: Report,
    http: Http,
    task_id: str,
    model: Model,
    words: Mapping[str, str],
    first: Any,
    started: float,
    interval: float,
    timeout: float,
    sleep: Callable[[float], None],
) -> None:
    finals = {words[State.SUCCEEDED.value]: "succeeded", words[State.FAILED.value]: "failed"}
    progress_words = [first] if first is not None else []
    progresses: list[int] = []
    final: dict[str, Any] | None = None
    last: Reply | None = None
    polls = 0
    while time.monotonic() - started < timeout:
        last = http.call("GET", task_path(task_id))
        polls += 1
        body = last.json()
        data = body.get("data") if isinstance(body, dict) else None
        if last.status != 200 or not isinstance(data, dict):
            break
        if isinstance(data.get("progress"), int):
            progresses.append(data["progress"])
        status = data.get("status")
        if status in finals or _looks_final(status, data):
            final = data
            break
        if status not in progress_words:
            progress_words.append(status)
        sleep(interval)
    elapsed = time.monotonic() - started
    in_progress = sorted({words[State.QUEUED.value], words[State.RUNNING.value]})
    report.observed["in_progress_words"] = progress_words
    report.add("status words while in progress", in_progress, sorted(set(progress_words)))
    if final is None:
        shown = f"HTTP {last.status}" if last is not None and last.status != 200 else "timeout"
        report.checks.append(Check("poll: task ended", "a final status", shown, DIFFER))
        return
    status = final.get("status")
    ended_ok = final.get("output") is not None or (
        finals.get(str(status)) == "succeeded" and final.get("error") is None
    )
    state = "succeeded" if ended_ok else "failed"
    report.observed["final_state"] = state
    report.observed["final_word"] = status
    report.add(f"status word at the end ({state})", words[state], status)
    other = "failed" if state == "succeeded" else "succeeded"
    report.checks.append(
        Check(
            f"status word at the end ({other})",
            words[other],
            "not observed",
            UNVERIFIED,
            f"no task {other} during this run",
        )
    )
    report.add(
        "task body: fields and types",
        {k: "|".join(v) for k, v in TASK_FIELDS.items()},
        {k: _type_of(final, k, TASK_FIELDS.get(k, ())) for k in [*TASK_FIELDS, *final]},
    )
    monotonic = all(a <= b for a, b in itertools.pairwise(progresses))
    bounded = all(0 <= p <= 100 for p in progresses)
    report.add("progress: 0-100, never decreasing", True, monotonic and bounded)
    if state == "succeeded":
        output = final.get("output")
        kind = model.output
        shape = sorted(output) if isinstance(output, dict) else _json_type(output)
        report.add("output fields", sorted([kind.url_field, kind.urls_field]), shape)
        expected_credits = _cost(model)
        report.add("credits_consumed", expected_credits, final.get("credits_consumed"))
        url = output.get(kind.url_field) if isinstance(output, dict) else None
        if isinstance(url, str):
            file = http.call("GET", url)
            media = file.headers.get("Content-Type", file.headers.get("content-type", ""))
            wanted = kind.formats[model.file_ext(_defaults(model))]
            report.add(
                f"{kind.kind} download", f"200 {wanted}", f"{file.status} {media.split(';')[0]}"
            )
    report.observed["seconds_to_end"] = round(elapsed, 3)
    report.observed["polls"] = polls
    low, high = model.timing.min_s, model.timing.max_s
    report.checks.append(
        Check(
            "time to the end (s)",
            f"{low:g}-{high:g} (catalogue)",
            round(elapsed, 1),
            AGREE if elapsed <= 2 * high + interval else DIFFER,
            f"{polls} poll(s); a faster server agrees",
        )
    )


def _looks_final(status: Any, data: Mapping[str, Any]) -> bool:
    """A word this run did not expect, but the body says the task ended (output or error)."""
    return isinstance(status, str) and (data.get("output") is not None or bool(data.get("error")))


def _type_of(body: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    if name not in body:
        return "missing"
    kind = _json_type(body[name])
    if not allowed:
        return f"unexpected {kind}"
    return "|".join(allowed) if kind in allowed else kind


# -- turning differences into a scenario ----------------------------------------------------


def scenario_from_report(report: Report, name: str = "observed") -> tuple[dict[str, Any], str]:
    """(scenario data, YAML text): status words as observed; the differences a scenario cannot
    express (error types, body shape) are listed as comments."""
    words: dict[str, str] = {}
    default = expected_words(None)
    seen = [w for w in report.observed.get("in_progress_words", []) if isinstance(w, str)]
    if seen:
        queued, running = seen[0], seen[-1]
        if queued != default["queued"]:
            words["queued"] = queued
        if running != default["running"]:
            words["running"] = running
    final = report.observed.get("final_word")
    state = report.observed.get("final_state")
    if isinstance(final, str) and state and final != default[state]:
        words[state] = final
    data: dict[str, Any] = {
        "name": name,
        "description": f"Aligns the emulator with {report.base_url} as observed by "
        "aio-emulator verify.",
    }
    if words:
        data["status_words"] = words
    comments = [
        f"# Written by aio-emulator verify against {report.base_url} (model {report.model}).",
    ]
    loose = [
        c
        for c in report.differences
        if not c.name.startswith("status word") and c.name != "status words while in progress"
    ]
    if loose:
        comments.append("# Differences a scenario cannot express yet (report them upstream):")
        for c in loose:
            comments.append(
                f"#   {c.name}: emulator {_show(c.expected)}; server {_show(c.observed)}"
            )
    text = "\n".join(comments) + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return data, text


# -- command line ---------------------------------------------------------------------------


def confirm(question: str, stdin: TextIO, stdout: TextIO) -> bool:
    """Ask on the terminal; a closed or non-interactive stdin answers no."""
    print(question, end=" ", file=stdout, flush=True)
    try:
        answer = stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not answer:
        print("\n(no answer: stdin is closed; pass --yes to run unattended)", file=stdout)
    return answer.strip().lower() in ("y", "yes")


def main(args: Any, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The ``verify`` subcommand: 0 all agree, 1 differences, 2 did not run."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    catalogue = Catalogue.default()
    try:
        model = probe_model(catalogue, args.model)
        scenario = load(args.scenario) if args.scenario else None
    except (VerifyError, ValueError) as exc:
        print(f"aio-emulator verify: {exc}", file=sys.stderr)
        return 2
    chat = args.chat
    print(render_plan(model, args.base_url, args.max_credits, chat), file=stdout)
    worst = sum(step.worst_credits for step in plan(model, chat))
    if worst > args.max_credits:
        print(
            f"aio-emulator verify: refusing: this plan may cost {worst} credits, more than "
            f"--max-credits {args.max_credits}.",
            file=sys.stderr,
        )
        return 2
    if not args.yes and not confirm("Proceed? [y/N]", stdin, stdout):
        print("aio-emulator verify: not confirmed; nothing was sent.", file=sys.stderr)
        return 2
    report = run_verify(
        args.base_url,
        args.api_key,
        model=model.id,
        scenario=scenario,
        interval=args.interval,
        timeout=args.timeout,
        catalogue=catalogue,
        chat=chat,
    )
    print(report.render(), file=stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report.as_dict(), out, indent=2, ensure_ascii=False)
    if args.write_scenario:
        _, text = scenario_from_report(report)
        with open(args.write_scenario, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"wrote {args.write_scenario}: serve it with --scenario", file=stdout)
    return 1 if report.differences else 0
