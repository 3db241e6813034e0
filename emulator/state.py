"""The state file: tasks, balances, clock, journal and randomness saved across restarts.

The file is JSON with a format name and a version (2; version 1 files, written by 0.1.0, are
read too). Every field is written as plain JSON under its own name, never as a Python class or
module path, so a file outlives any reshaping of the code. It is written atomically (a
temporary file in the same folder, fsync, rename, fsync of the folder), so a crash leaves the
previous file or the new one, never half of one.

A file is checked whole before anything is restored: one that cannot be read, belongs to
another version or holds a value the emulator could never have written (a NaN time, an unknown
model, negative credits, a reservation no task accounts for...) stops start-up with
:class:`StateError`, whose one-line message names the file and the field, and is left
untouched: never a silent reset, never half a restore.

Saving takes a cheap snapshot on the server's event loop (references to immutable values, no
encoding) and encodes and writes it in a worker thread, one small piece at a time, so a big
state holds the loop for milliseconds, not for the whole encoding. An interval in which nothing
changed takes no snapshot at all: :func:`change_mark`, a few counters, says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import operator
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from .billing import Account
from .clock import VirtualClock
from .scenarios import ImageEffect, WebhookEffect
from .scenarios.model import IMAGE_MODES
from .tasks import State, Task, TaskScript, WebhookTarget
from .wire import dumps

if TYPE_CHECKING:
    from .catalogue import Catalogue
    from .service import Emulator

__all__ = [
    "DEFAULT_STATE_INTERVAL_S",
    "FORMAT",
    "VERSION",
    "Autosaver",
    "Saved",
    "Snapshot",
    "StateError",
    "change_mark",
    "check_writable",
    "dump",
    "encode",
    "load",
    "load_into",
    "parse",
    "pieces",
    "restore",
    "save",
    "take_snapshot",
]

FORMAT = "aio-emulator-state"
VERSION = 2
#: versions this emulator reads (1: release 0.1.0, with tagged Python objects)
READS = (1, 2)
DEFAULT_STATE_INTERVAL_S = 5.0
#: deepest nesting accepted in the free-form parts of a file (journal bodies)
MAX_DEPTH = 64
#: how an infinite duration (a scenario's ``.inf``) is written: JSON has no infinity
INFINITE = "inf"


class StateError(ValueError):
    """A state file that cannot be used; the message says which file and why, on one line."""


# -- the snapshot (on the loop) and its encoding (in a worker thread) ---------------------------

#: what a task is made of (not its ``jobs``, a cache of what its downloads rebuild)
_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task) if f.compare)
_task_row = operator.attrgetter(*_TASK_FIELDS)


class Snapshot(NamedTuple):
    """The emulator at one instant, as references to values nobody changes afterwards (task
    scripts, parameters and effects are immutable once created; the mutable task fields are
    copied into the row), so it can be encoded later in another thread."""

    seed: int
    clock: tuple[str, float, float | None]
    rng: tuple[Any, ...]
    accounts: list[tuple[str, int, int, int]]
    journal_seq: int
    journal: Callable[[], list[dict[str, Any]]]
    tasks: list[tuple[Any, ...]]


def take_snapshot(emulator: Emulator) -> Snapshot:
    """A consistent snapshot, cheap enough for the event loop (about 3 ms per 10,000 tasks)."""
    clock = emulator.clock
    start = clock.start if isinstance(clock, VirtualClock) else None
    return Snapshot(
        emulator.seed,
        (clock.mode, clock.now(), start),
        emulator.rng.getstate(),
        [(a.key, a.balance, a.reserved, a.spent) for a in emulator.ledger.accounts.values()],
        emulator.journal.seq,
        emulator.journal.snapshot(),
        [_task_row(t) for t in emulator.tasks],
    )


def change_mark(emulator: Emulator) -> tuple[Any, ...]:
    """Counters that move whenever what the file holds may have changed, read in constant time:
    every journaled request and webhook delivery (what creates, polls and chat calls change
    comes with one), a journal cleared, tasks that end or are forgotten between requests,
    balances set, reset or restored, accounts opened, a virtual clock moved. A real clock's time
    is not in it: it is saved, but never restored."""
    clock = emulator.clock
    return (
        emulator.journal.seq,
        len(emulator.journal),
        len(emulator.tasks),
        emulator.tasks.finished,
        emulator.ledger.edits,
        len(emulator.ledger.accounts),
        clock.now() if isinstance(clock, VirtualClock) else None,
    )


def encode(snapshot: Snapshot) -> bytes:
    """The file's bytes: UTF-8 JSON (lone surrogates from clients' JSON written as escapes)."""
    return b"".join(pieces(snapshot))


def pieces(snapshot: Snapshot) -> Iterator[bytes]:
    """The file's bytes in small pieces (one per task and journal entry): encoded one at a
    time, with no big copy, so that another thread gets the interpreter between them."""
    mode, now, start = snapshot.clock
    version, internal, gauss = snapshot.rng
    head = dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "seed": snapshot.seed,
            "clock": {"mode": mode, "now": now, "start": start},
            "rng": {"version": version, "state": internal, "gauss": gauss},
            "accounts": [
                {"key": k, "balance": b, "reserved": r, "spent": s}
                for k, b, r, s in snapshot.accounts
            ],
        }
    )
    yield head[:-1] + b',"journal":{"seq":%d,"entries":[' % snapshot.journal_seq
    comma = b""
    for entry in snapshot.journal():
        yield comma + dumps(entry)
        comma = b","
    yield b']},"tasks":['
    comma = b""
    for row in snapshot.tasks:
        yield comma + dumps(_task_json(row))
        comma = b","
    yield b"]}"


def dump(emulator: Emulator) -> bytes:
    """The state file's bytes for ``emulator`` now (snapshot and encoding in one go)."""
    return encode(take_snapshot(emulator))


def _task_json(row: tuple[Any, ...]) -> dict[str, Any]:
    task = dict(zip(_TASK_FIELDS, row, strict=True))
    script: TaskScript = task["script"]
    task["script"] = {
        "queued_s": _duration(script.queued_s),
        "running_s": _duration(script.running_s),
        "outcome": script.outcome.value,
        "error": script.error,
        "forever": script.forever,
        "fail_at_poll": script.fail_at_poll,
        "progress_steps": script.progress_steps,
    }
    forced = task["forced"]
    if forced is not None:
        task["forced"] = {"state": forced[0].value, "at": forced[1], "progress": forced[2]}
    image: ImageEffect | None = task["image"]
    if image is not None:
        task["image"] = {"mode": image.mode, "after_s": _duration(image.after_s)}
    target: WebhookTarget | None = task["webhook"]
    if target is not None:
        effect = target.effect
        task["webhook"] = {
            "url": target.url,
            "base_url": target.base_url,
            "words": dict(target.words),
            "effect": None if effect is None else {
                "delay_s": _duration(effect.delay_s),
                "fail_attempts": effect.fail_attempts,
                "duplicate": effect.duplicate,
                "drop": effect.drop,
            },
        }  # fmt: skip
    return task


def _duration(seconds: float) -> float | str:
    return INFINITE if seconds == math.inf else seconds


# -- reading: everything checked before anything is restored -------------------------------------


class Saved(NamedTuple):
    """A state file's content, checked and typed, ready to restore."""

    seed: int
    now: float
    start: float | None
    rng: tuple[Any, ...]
    accounts: list[Account]
    journal_seq: int
    entries: list[dict[str, Any]]
    tasks: list[Task]


_STATES = frozenset(s.value for s in State)


class _Bad(Exception):
    """A value that is not what the emulator writes (message: ``where: what``)."""


def parse(data: Any, catalogue: Catalogue, mode: str, *, source: str = "<state>") -> Saved:
    """Check a parsed state file whole; StateError naming the first bad field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{source}: not an aio-emulator state file")
    version = data.get("version")
    if version not in READS:
        raise StateError(
            f"{source}: state file version {_shown(version)} is not supported (this emulator "
            f"reads versions {', '.join(map(str, READS))}); move the file away to start empty"
        )
    try:
        if version == 1:
            data = _upgrade_v1(data)
        return _saved(data, catalogue, mode, source)
    except _Bad as exc:
        raise StateError(f"{source}: damaged state file: {exc}") from None
    except RecursionError:
        raise StateError(f"{source}: damaged state file: nested too deeply") from None


def _saved(data: dict[str, Any], catalogue: Catalogue, mode: str, source: str) -> Saved:
    clock = _obj(_need(data, "clock", ""), "clock")
    saved_mode = _need(clock, "mode", "clock")
    if saved_mode not in ("real", "virtual"):
        _bad("clock.mode", "real or virtual", saved_mode)
    if saved_mode != mode:
        raise StateError(
            f"{source}: saved with --clock {saved_mode}, but this server runs "
            f"--clock {mode}; start it with --clock {saved_mode}"
        )
    now = _number(_need(clock, "now", "clock"), "clock.now")
    start = clock.get("start")
    start = None if start is None else _number(start, "clock.start")
    tasks = [_task(raw, f"tasks[{i}]", catalogue) for i, raw in enumerate(_list(data, "tasks"))]
    accounts = [_account(raw, f"accounts[{i}]") for i, raw in enumerate(_list(data, "accounts"))]
    _check_ledger(tasks, accounts)
    journal = _obj(_need(data, "journal", ""), "journal")
    seq = _int(_need(journal, "seq", "journal"), "journal.seq")
    entries = [_entry(raw, f"journal.entries[{i}]", seq)
               for i, raw in enumerate(_list(journal, "entries", "journal."))]  # fmt: skip
    for i in range(1, len(entries)):
        if entries[i]["seq"] <= entries[i - 1]["seq"]:
            _bad(f"journal.entries[{i}].seq", "increasing sequence numbers", entries[i]["seq"])
    seed = _need(data, "seed", "")
    if type(seed) is not int:
        _bad("seed", "an integer", seed)
    return Saved(seed, now, start, _rng(_need(data, "rng", "")), accounts, seq, entries, tasks)


def _task(raw: Any, where: str, catalogue: Catalogue) -> Task:
    d = _obj(raw, where)
    model = _str(_need(d, "model", where), f"{where}.model")
    if model not in catalogue.models:
        raise _Bad(f"{where}.model: {_shown(model)} is not a model of this emulator")
    s = _obj(_need(d, "script", where), f"{where}.script")
    at = f"{where}.script"
    script = TaskScript(
        _number(_need(s, "queued_s", at), f"{at}.queued_s", infinite=True),
        _number(_need(s, "running_s", at), f"{at}.running_s", infinite=True),
        _state(_need(s, "outcome", at), f"{at}.outcome"),
        _str(s.get("error"), f"{at}.error", none=True),
        _bool(s.get("forever", False), f"{at}.forever"),
        _int(s.get("fail_at_poll"), f"{at}.fail_at_poll", none=True),
        _int(s.get("progress_steps"), f"{at}.progress_steps", none=True),
    )
    forced = d.get("forced")
    if forced is not None:
        f = _obj(forced, f"{where}.forced")
        progress = _int(_need(f, "progress", f"{where}.forced"), f"{where}.forced.progress")
        forced = (
            _state(_need(f, "state", f"{where}.forced"), f"{where}.forced.state"),
            _number(_need(f, "at", f"{where}.forced"), f"{where}.forced.at"),
            progress if progress <= 100 else _bad(f"{where}.forced.progress", "0 to 100", progress),
        )
    return Task(
        id=_str(_need(d, "id", where), f"{where}.id"),
        key=_key(_need(d, "key", where), f"{where}.key"),
        model=model,
        params=_params(_need(d, "params", where), f"{where}.params"),
        created_at=_number(_need(d, "created_at", where), f"{where}.created_at"),
        script=script,
        seed=_int(_need(d, "seed", where), f"{where}.seed"),
        width=_int(_need(d, "width", where), f"{where}.width", low=0),  # 0: audio
        height=_int(_need(d, "height", where), f"{where}.height", low=0),
        images=_int(_need(d, "images", where), f"{where}.images", low=1),
        credits=_int(_need(d, "credits", where), f"{where}.credits"),
        prompt=_str(d.get("prompt", ""), f"{where}.prompt"),
        polls=_int(d.get("polls", 0), f"{where}.polls"),
        finished_at=_number(d.get("finished_at"), f"{where}.finished_at", none=True),
        forced=forced,
        image=_image(d.get("image"), f"{where}.image"),
        webhook=_webhook(d.get("webhook"), f"{where}.webhook"),
    )


def _image(raw: Any, where: str) -> ImageEffect | None:
    if raw is None:
        return None
    d = _obj(raw, where)
    mode = _need(d, "mode", where)
    if mode not in IMAGE_MODES:
        _bad(f"{where}.mode", "one of " + ", ".join(IMAGE_MODES), mode)
    return ImageEffect(mode, _number(d.get("after_s", 0.0), f"{where}.after_s", infinite=True))


def _webhook(raw: Any, where: str) -> WebhookTarget | None:
    if raw is None:
        return None
    d = _obj(raw, where)
    words = _obj(_need(d, "words", where), f"{where}.words")
    if set(words) != _STATES or not all(isinstance(w, str) for w in words.values()):
        _bad(f"{where}.words", "a word for each of queued, running, succeeded, failed", words)
    effect = d.get("effect")
    if effect is not None:
        e = _obj(effect, f"{where}.effect")
        effect = WebhookEffect(
            _number(e.get("delay_s", 0.0), f"{where}.effect.delay_s", infinite=True),
            _int(e.get("fail_attempts", 0), f"{where}.effect.fail_attempts"),
            _bool(e.get("duplicate", False), f"{where}.effect.duplicate"),
            _bool(e.get("drop", False), f"{where}.effect.drop"),
        )
    return WebhookTarget(
        _str(_need(d, "url", where), f"{where}.url"),
        _str(_need(d, "base_url", where), f"{where}.base_url"),
        words,
        effect,
    )


#: how deep a task's parameters nest (a speech ``dialogue`` of line objects is 2)
MAX_PARAM_DEPTH = 4


def _params(raw: Any, where: str) -> dict[str, Any]:
    """A task's validated parameters: JSON values (strings, finite numbers, booleans, null,
    and lists and objects of those, e.g. a speech ``dialogue``), nested at most
    :data:`MAX_PARAM_DEPTH` deep."""
    params = _obj(raw, where)
    for name, value in params.items():
        if not _plain_param(value, MAX_PARAM_DEPTH):
            _bad(f"{where}.{name}", "a JSON value of a validated request", value)
    return params


def _plain_param(value: Any, depth: int) -> bool:
    if isinstance(value, list | dict):
        items = value.values() if isinstance(value, dict) else value
        return depth > 0 and all(_plain_param(v, depth - 1) for v in items)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def _account(raw: Any, where: str) -> Account:
    d = _obj(raw, where)
    return Account(
        _key(_need(d, "key", where), f"{where}.key"),
        _int(_need(d, "balance", where), f"{where}.balance"),
        _int(_need(d, "reserved", where), f"{where}.reserved"),
        _int(_need(d, "spent", where), f"{where}.spent"),
    )


def _check_ledger(tasks: list[Task], accounts: list[Account]) -> None:
    """Every task once; each key's reserved credits are exactly those of its unsettled tasks
    (else settling them would leave a negative reservation, or credits no task accounts for)."""
    seen: set[str] = set()
    held: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task.id in seen:
            raise _Bad(f"tasks[{i}].id: task {_shown(task.id)} is saved twice")
        seen.add(task.id)
        if task.finished_at is None and task.credits:
            held[task.key] = held.get(task.key, 0) + task.credits
    keys: set[str] = set()
    for i, account in enumerate(accounts):
        if account.key in keys:
            raise _Bad(f"accounts[{i}].key: key {_shown(account.key)} is saved twice")
        keys.add(account.key)
        holds = held.pop(account.key, 0)
        if account.reserved != holds:
            raise _Bad(
                f"accounts[{i}].reserved: {account.reserved} credits reserved, but the key's "
                f"unfinished tasks hold {holds}"
            )
    if held:
        key = next(iter(held))
        raise _Bad(f"accounts: no account for key {_shown(key)}, whose unfinished tasks hold "
                   f"{held[key]} credits")  # fmt: skip


_ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,), "path": (str,), "query": (str,), "key": (str, type(None)),
    "status": (int, type(None)), "error": (str, type(None)), "task_id": (str, type(None)),
    "rule": (str, type(None)), "time": (str,), "at": (int, float), "wall": (int, float),
    "latency_ms": (int, float, type(None)), "kind": (str,), "attempt": (int, type(None)),
    "duplicate": (bool,), "_json": (bool,),
}  # fmt: skip


def _entry(raw: Any, where: str, seq: int) -> dict[str, Any]:
    """A journal entry as :meth:`Journal.stored` gives it, with the fields its readers use."""
    entry = _obj(raw, where)
    number = _int(_need(entry, "seq", where), f"{where}.seq", low=1)
    if number > seq:
        _bad(f"{where}.seq", f"at most the journal's seq {seq}", number)
    for name in ("method", "path"):
        _need(entry, name, where)
    for name, kinds in _ENTRY_FIELDS.items():
        value = entry.get(name)
        if name in entry and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            _bad(f"{where}.{name}", "a " + " or ".join(k.__name__ for k in kinds), value)
    body = entry.get("body")
    if entry.get("_json"):
        if not isinstance(body, str):
            _bad(f"{where}.body", "JSON text", body)
        try:  # readers parse it: a body too deep to parse (saved by 0.1.0) is shown as text
            _depth(json.loads(body), f"{where}.body")
        except (ValueError, RecursionError, _Bad):
            entry = {k: v for k, v in entry.items() if k != "_json"}
    elif body is not None and not isinstance(body, str):
        _depth(body, f"{where}.body")
    if entry.get("response") is not None:
        entry = {**entry, "response": _response(entry["response"], f"{where}.response")}
    return entry


def _response(raw: Any, where: str) -> dict[str, Any]:
    """A chat call's answer (JSON text of an object, as the journal keeps it, or the object);
    one journaled before the whole ``chat.completion`` was kept (a summary: ``reply``,
    ``finish_reason``, ``usage``, ``credits_consumed``, ``ttft_ms``, ``stream``) is given
    the present shape, with the completion rebuilt from what the summary held."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        _bad(where, "JSON text of an object", raw)
    if not isinstance(value, dict):
        _bad(where, "an object", value)
    _depth(value, where)
    if "completion" in value or "reply" not in value:
        return value
    reply, finish = value.get("reply"), value.get("finish_reason")
    message: dict[str, Any] = {"role": "assistant", "content": reply}
    calls: Any = None
    if finish == "tool_calls" and isinstance(reply, str):  # the calls, as JSON text
        with contextlib.suppress(ValueError):
            calls = json.loads(reply)
    if isinstance(calls, list):
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": c.get("id"), "type": "function",
             "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for c in calls if isinstance(c, dict)
        ]}  # fmt: skip
    charged = value.get("credits_consumed")
    completion = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": value.get("usage"),
        "credits_consumed": charged,
    }
    return {"completion": completion, "stream": bool(value.get("stream")), "wrapped": False,
            "ttft_ms": value.get("ttft_ms"), "charged": charged, "fault": None, "cut": False,
            "sent": None}  # fmt: skip


def _depth(value: Any, where: str) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` (without recursing)."""
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH + 1):
        level = [v for item in level if isinstance(item, dict | list)
                 for v in (item.values() if isinstance(item, dict) else item)]  # fmt: skip
        if not level:
            return
    raise _Bad(f"{where}: nested more than {MAX_DEPTH} levels deep")


def _rng(raw: Any) -> tuple[Any, ...]:
    d = _obj(raw, "rng")
    internal = _need(d, "state", "rng")
    gauss = d.get("gauss")
    if not isinstance(internal, list) or not all(type(i) is int for i in internal):
        _bad("rng.state", "a list of integers", internal)
    if gauss is not None:
        gauss = _number(gauss, "rng.gauss", low=-math.inf)
    state = (_need(d, "version", "rng"), tuple(internal), gauss)
    try:
        random.Random().setstate(state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Bad(f"rng: not a random generator's state ({exc})") from None
    return state


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 file in the shape of version 2 (then checked like one)."""
    data = dict(data)
    rng = data.get("rng")
    if isinstance(rng, list) and len(rng) == 3:
        data["rng"] = {"version": rng[0], "state": rng[1], "gauss": rng[2]}
    accounts = _list(data, "accounts")
    for i, row in enumerate(accounts):
        if not isinstance(row, list) or len(row) != 4:
            _bad(f"accounts[{i}]", "[key, balance, reserved, spent]", row)
    data["accounts"] = [dict(zip(("key", "balance", "reserved", "spent"), row, strict=True))
                        for row in accounts]  # fmt: skip
    tasks = []
    for i, raw in enumerate(_list(data, "tasks")):
        task = dict(_obj(raw, f"tasks[{i}]"))
        forced = task.get("forced")
        if forced is not None:
            if not isinstance(forced, list) or len(forced) != 3:
                _bad(f"tasks[{i}].forced", "[state, at, progress]", forced)
            task["forced"] = dict(zip(("state", "at", "progress"), forced, strict=True))
        extra = _obj(task.pop("extra", {}), f"tasks[{i}].extra")
        for name, value in extra.items():
            if name not in ("image", "webhook"):
                raise _Bad(f"tasks[{i}].extra: unknown field {_shown(name)}")
            task[name] = _untag_v1(value, f"tasks[{i}].extra.{name}", 0)
        tasks.append(task)
    data["tasks"] = tasks
    return data


#: the objects a version 1 file may hold, by the name it wrote for them
_V1_OBJECTS = {
    "emulator.scenarios:ImageEffect": ("mode", "after_s"),
    "emulator.scenarios:WebhookEffect": ("delay_s", "fail_attempts", "duplicate", "drop"),
    "emulator.webhooks:WebhookTarget": ("url", "base_url", "words", "effect"),
    "emulator.tasks:WebhookTarget": ("url", "base_url", "words", "effect"),
}


def _untag_v1(value: Any, where: str, depth: int) -> Any:
    """Version 1's ``{"$dc": "module:Class", "fields": {...}}`` as the plain ``{...}``."""
    if depth > 3:
        raise _Bad(f"{where}: nested too deeply")
    if not isinstance(value, dict):
        return value
    if "$dc" not in value:
        return {k: _untag_v1(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    names = _V1_OBJECTS.get(value["$dc"]) if isinstance(value["$dc"], str) else None
    fields = value.get("fields")
    if names is None or not isinstance(fields, dict) or not set(fields) <= set(names):
        raise _Bad(f"{where}: unknown saved object {_shown(value['$dc'])}")
    return {k: _untag_v1(v, f"{where}.{k}", depth + 1) for k, v in fields.items()}


# -- typed reads of one value ---------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...)"


def _bad(where: str, expected: str, value: Any) -> NoReturn:
    raise _Bad(f"{where}: expected {expected}, got {_shown(value)}")


def _need(d: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in d:
        raise _Bad(f"{where + '.' if where else ''}{name}: missing")
    return d[name]


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _bad(where, "an object", value)
    return value


def _list(d: Mapping[str, Any], name: str, prefix: str = "") -> list[Any]:
    value = _need(d, name, prefix.rstrip("."))
    if not isinstance(value, list):
        _bad(prefix + name, "a list", value)
    return value


def _str(value: Any, where: str, *, none: bool = False) -> Any:
    if not isinstance(value, str) and not (none and value is None):
        _bad(where, "a string", value)
    return value


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("aio_"):
        _bad(where, "an API key (aio_...)", value)
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _bad(where, "true or false", value)
    return value


def _int(value: Any, where: str, *, low: int = 0, none: bool = False) -> Any:
    if value is None and none:
        return None
    if type(value) is not int or value < low:
        _bad(where, f"an integer of at least {low}", value)
    return value


def _number(
    value: Any, where: str, *, low: float = 0.0, infinite: bool = False, none: bool = False
) -> Any:
    if value is None and none:
        return None
    if infinite and value in (INFINITE, math.inf):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _bad(where, "a finite number", value)
    if value < low:
        _bad(where, f"a number of at least {low:g}", value)
    return float(value)


def _state(value: Any, where: str) -> State:
    try:
        return State(value)
    except ValueError:
        _bad(where, "one of " + ", ".join(s.value for s in State), value)


# -- restoring ------------------------------------------------------------------------------------


def restore(emulator: Emulator, data: Any, *, source: str = "<state>") -> None:
    """Put a saved state back into a freshly built emulator (tasks, balances, clock, journal,
    rng), after checking all of it: a StateError changes nothing.

    Tasks that ended while the server was down are settled on the first sweep, as if the server
    had run throughout.
    """
    saved = parse(data, emulator.catalogue, emulator.clock.mode, source=source)
    emulator.seed = saved.seed
    emulator.rng.setstate(saved.rng)
    if isinstance(emulator.clock, VirtualClock):
        emulator.clock.restore(saved.now, saved.start)
    emulator.ledger.restore(saved.accounts)
    emulator.journal.restore(saved.entries, saved.journal_seq)
    emulator.tasks.restore(saved.tasks, emulator.clock.now())


# -- files ----------------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed file, None if it does not exist; StateError if it cannot be used."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{shown}: cannot read the state file: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(
            f"{shown}: the state file is damaged ({exc}); fix or move it away to start empty"
        ) from exc
    except (RecursionError, ValueError) as exc:  # nesting, a number too long to read
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise StateError(
            f"{shown}: the state file is damaged ({reason}); fix or move it away to start empty"
        ) from None
    if not isinstance(data, dict):
        raise StateError(f"{shown}: not an aio-emulator state file")
    return data


def load_into(emulator: Emulator, path: str | os.PathLike[str]) -> bool:
    """Restore ``emulator`` from ``path`` if the file exists; True when something was loaded."""
    data = load(path)
    if data is None:
        return False
    restore(emulator, data, source=os.fspath(path))
    return True


def check_writable(path: str | os.PathLike[str]) -> None:
    """StateError unless a state file can be saved at ``path`` (checked at start-up, so a bad
    location is not first noticed at the first save)."""
    shown = os.fspath(path)
    if os.path.isdir(path):
        raise StateError(f"{shown}: is a folder; give the path of a file in it")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".aio-state-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise StateError(
            f"{shown}: cannot save the state file there ({exc.strerror}); "
            "create the folder or pick another --state-file"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def save(path: str | os.PathLike[str], payload: bytes | Iterable[bytes]) -> None:
    """Write ``payload`` (bytes, or pieces of them) atomically: temporary file in the same
    folder, fsync, rename, fsync the folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".aio-state-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(payload, bytes):
                fh.write(payload)
            else:
                fh.writelines(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Autosaver:
    """Saves the emulator to its state file every ``interval_s`` (only when it changed) and on
    demand. While :func:`change_mark` is that of the state on disk, nothing is snapshotted;
    else the snapshot is taken on the server's event loop, and encoding, comparing and writing
    happen in a worker thread. A failed save is logged, counted in :attr:`status` (shown by
    ``GET /_emulator/health``) and tried again at the next interval: the loop never stops."""

    def __init__(self, emulator: Emulator, path: str, interval_s: float) -> None:
        self.emulator = emulator
        self.path = path
        self.interval_s = interval_s
        self.saves = 0
        #: what health shows; changed on the event loop only
        self.status: dict[str, Any] = {
            "file": path, "last_saved": None, "last_error": None, "failures": 0,
        }  # fmt: skip
        self._digest: bytes | None = None  # of the bytes on disk
        self._mark: tuple[Any, ...] | None = None  # change_mark() of the state on disk
        self._lock = threading.Lock()  # one writer at a time (a cancelled save may still run)
        self._taken = 0  # snapshots taken
        self._written = 0  # number of the snapshot on disk: an older one never replaces it

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.save()

    async def save(self) -> bool:
        """Save now, off the loop; True if the file was written (False: unchanged or failed)."""
        mark = change_mark(self.emulator)
        if mark == self._mark:
            return False
        try:
            number, snapshot = self._take()
            wrote = await asyncio.to_thread(self._write, number, snapshot, mark)
        except Exception as exc:  # whatever happens, the server keeps running and retries
            self._failed(exc)
            return False
        self._saved(wrote)
        return wrote

    def save_now(self) -> bool:
        """Save synchronously (at shutdown); True if the file was written. Failures are reported
        as for :meth:`save`: ``status["failures"]`` tells them from "nothing changed"."""
        mark = change_mark(self.emulator)
        if mark == self._mark:
            return False
        try:
            wrote = self._write(*self._take(), mark)
        except Exception as exc:
            self._failed(exc)
            return False
        self._saved(wrote)
        return wrote

    def _take(self) -> tuple[int, Snapshot]:
        self._taken += 1
        return self._taken, take_snapshot(self.emulator)

    def _write(self, number: int, snapshot: Snapshot, mark: tuple[Any, ...]) -> bool:
        """Write ``snapshot`` unless the file holds the same bytes or a later snapshot."""
        with self._lock:
            if number < self._written:
                return False
            payload = list(pieces(snapshot))
            hasher = hashlib.blake2b(digest_size=16)
            for piece in payload:
                hasher.update(piece)
            digest = hasher.digest()
            wrote = digest != self._digest
            if wrote:
                save(self.path, payload)
            self._digest, self._written, self._mark = digest, number, mark
            return wrote

    def _saved(self, wrote: bool) -> None:
        if wrote:
            self.saves += 1
            self.status["last_saved"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.status["last_error"] = None  # (unchanged: what is on disk is current)
        self.status["failures"] = 0

    def _failed(self, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        reason = " ".join(reason.split())[:500]
        self.status["last_error"] = reason
        self.status["failures"] += 1
        stamp = time.strftime("%H:%M:%S")
        print(f"aio-emulator: {stamp} could not save the state to {self.path}: {reason} "
              f"(failure {self.status['failures']}; retried every {self.interval_s:g} s)",
              file=sys.stderr, flush=True)  # fmt: skip
