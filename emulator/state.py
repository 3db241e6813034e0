"""The state file: tasks, balances, clock, journal and randomness saved across restarts.

The file is JSON with a format name and a version. It is written atomically (a temporary file in
the same folder, fsync, rename, fsync of the folder), so a crash leaves the previous file or the
new one, never half of one. A file that cannot be read or belongs to another version stops
start-up with :class:`StateError` and is left untouched: never a silent reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from .clock import VirtualClock
from .tasks import State, Task, TaskScript

if TYPE_CHECKING:
    from .service import Emulator

__all__ = [
    "DEFAULT_STATE_INTERVAL_S",
    "FORMAT",
    "VERSION",
    "Autosaver",
    "StateError",
    "dump",
    "load",
    "restore",
    "save",
    "snapshot",
]

FORMAT = "aio-emulator-state"
VERSION = 1
DEFAULT_STATE_INTERVAL_S = 5.0


class StateError(ValueError):
    """A state file that cannot be used; the message says which file and why."""


# -- encoding -------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """Plain JSON, with tuples, enums and emulator dataclasses tagged so they come back."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, State):
        return value.value
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not value.keys() & _TAGS:
            return {k: _encode(v) for k, v in value.items()}
        return {"$dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith("emulator."):
            raise TypeError(f"cannot save a {cls.__module__}.{cls.__qualname__}")
        return {
            "$dc": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, frozenset | set):
        return {"$set": sorted((_encode(v) for v in value), key=repr)}
    raise TypeError(f"cannot save a value of type {type(value).__name__}")


_TAGS = frozenset({"$tuple", "$dc", "$dict", "$set"})
_SCALARS = frozenset({str, int, float, bool})


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dict" in value:
        return {_hashable(_decode(k)): _decode(v) for k, v in value["$dict"]}
    if "$set" in value:
        return frozenset(_hashable(_decode(v)) for v in value["$set"])
    if "$tuple" in value:
        return tuple(_decode(v) for v in value["$tuple"])
    if "$dc" in value:
        module_name, _, qualname = str(value["$dc"]).partition(":")
        if not module_name.startswith("emulator.") or "." in qualname:
            raise StateError(f"unknown saved object {value['$dc']!r}")
        cls = getattr(importlib.import_module(module_name), qualname, None)
        if cls is None or not dataclasses.is_dataclass(cls):
            raise StateError(f"unknown saved object {value['$dc']!r}")
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    return {k: _decode(v) for k, v in value.items()}


_SCRIPT_FIELDS = tuple(f.name for f in dataclasses.fields(TaskScript))


def _script(script: TaskScript) -> dict[str, Any]:
    out = {name: getattr(script, name) for name in _SCRIPT_FIELDS}
    out["outcome"] = script.outcome.value
    return out


def _plain(value: Any) -> Any:
    """``value`` itself when it is already plain JSON data (the common case), else encoded."""
    if type(value) is dict and all(
        type(k) is str and k not in _TAGS and (v is None or type(v) in _SCALARS)
        for k, v in value.items()
    ):
        return value
    return _encode(value)


def _task(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "key": task.key,
        "model": task.model,
        "params": _plain(task.params),
        "created_at": task.created_at,
        "script": _script(task.script),
        "seed": task.seed,
        "width": task.width,
        "height": task.height,
        "images": task.images,
        "credits": task.credits,
        "prompt": task.prompt,
        "polls": task.polls,
        "finished_at": task.finished_at,
        "forced": None if task.forced is None else [task.forced[0].value, *task.forced[1:]],
        "extra": _encode(_effects(task)),
    }


def _effects(task: Task) -> dict[str, Any]:
    pairs = (("image", task.image), ("webhook", task.webhook))
    return {name: value for name, value in pairs if value is not None}


def _untask(raw: dict[str, Any]) -> Task:
    script = dict(raw["script"])
    script["outcome"] = State(script["outcome"])
    forced = raw["forced"]
    extra = _decode(raw["extra"])
    return Task(
        id=raw["id"],
        key=raw["key"],
        model=raw["model"],
        params=_decode(raw["params"]),
        created_at=float(raw["created_at"]),
        script=TaskScript(**script),
        seed=int(raw["seed"]),
        width=int(raw["width"]),
        height=int(raw["height"]),
        images=int(raw["images"]),
        credits=int(raw["credits"]),
        prompt=raw["prompt"],
        polls=int(raw["polls"]),
        finished_at=raw["finished_at"],
        forced=None if forced is None else (State(forced[0]), float(forced[1]), int(forced[2])),
        image=extra.get("image"),
        webhook=extra.get("webhook"),
    )


# -- snapshot and restore ---------------------------------------------------------------------


def snapshot(emulator: Emulator) -> dict[str, Any]:
    """Everything a restarted server needs, as plain JSON data (call on the server's loop)."""
    clock = emulator.clock
    version, internal, gauss = emulator.rng.getstate()
    return {
        "format": FORMAT,
        "version": VERSION,
        "seed": emulator.seed,
        "clock": {
            "mode": clock.mode,
            "now": clock.now(),
            "start": getattr(clock, "start", None),
        },
        "rng": [version, list(internal), gauss],
        "accounts": [
            [a.key, a.balance, a.reserved, a.spent] for a in emulator.ledger.accounts.values()
        ],
        "journal": {
            "seq": emulator.journal.seq,
            "entries": emulator.journal.stored(),  # display data: saved and restored as is
        },
        "tasks": [_task(t) for t in emulator.tasks],
    }


def dump(emulator: Emulator) -> bytes:
    return json.dumps(
        snapshot(emulator), ensure_ascii=False, separators=(",", ":"), default=_default
    ).encode()


def _default(value: Any) -> Any:
    """Journal entries are saved as they are; anything odd in them is saved as text."""
    try:
        return _encode(value)
    except TypeError:
        return repr(value)


def restore(emulator: Emulator, data: dict[str, Any], *, source: str = "<state>") -> None:
    """Put a snapshot back into a freshly built emulator (tasks, balances, clock, journal, rng).

    Tasks that ended while the server was down are settled on the first sweep, as if the server
    had run throughout.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{source}: not an aio-emulator state file")
    if data.get("version") != VERSION:
        raise StateError(
            f"{source}: state file version {data.get('version')!r} is not supported "
            f"(this emulator reads version {VERSION}); move the file away to start empty"
        )
    try:
        clock = data["clock"]
        if clock["mode"] != emulator.clock.mode:
            raise StateError(
                f"{source}: saved with --clock {clock['mode']}, but this server runs "
                f"--clock {emulator.clock.mode}; start it with --clock {clock['mode']}"
            )
        tasks = [_untask(t) for t in data["tasks"]]
        accounts = [(str(k), int(b), int(r), int(s)) for k, b, r, s in data["accounts"]]
        version, internal, gauss = data["rng"]
        rng_state = (int(version), tuple(int(i) for i in internal), gauss)
        entries = [e for e in data["journal"]["entries"] if isinstance(e, dict)]
        seq = int(data["journal"]["seq"])
        seed = int(data["seed"])
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"{source}: damaged state file ({type(exc).__name__}: {exc})") from exc

    emulator.seed = seed
    try:
        emulator.rng.setstate(rng_state)
    except (TypeError, ValueError) as exc:
        raise StateError(f"{source}: damaged random state ({exc})") from exc
    if isinstance(emulator.clock, VirtualClock):
        if clock.get("start") is not None:
            emulator.clock.start = float(clock["start"])
        emulator.clock._now = float(clock["now"])
    ledger = emulator.ledger
    ledger.accounts.clear()
    for key, balance, reserved, spent in accounts:
        account = ledger.account(key)
        account.balance, account.reserved, account.spent = balance, reserved, spent
    emulator.journal.restore(entries, seq)
    emulator.tasks.restore(tasks, emulator.clock.now())


# -- files ------------------------------------------------------------------------------------


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


def save(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write atomically: temporary file in the same folder, fsync, rename, fsync the folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".aio-state-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
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
    demand; runs on the server's event loop, the disk write in a worker thread."""

    def __init__(self, emulator: Emulator, path: str, interval_s: float) -> None:
        self.emulator = emulator
        self.path = path
        self.interval_s = interval_s
        self._digest: bytes | None = None
        self.saves = 0

    def _payload(self) -> bytes | None:
        """The snapshot's bytes if they differ from the last saved ones."""
        payload = dump(self.emulator)
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        if digest == self._digest:
            return None
        self._digest = digest
        return payload

    def save_now(self) -> bool:
        """Save synchronously (at shutdown); False if nothing changed or the write failed."""
        try:
            payload = self._payload()
            if payload is None:
                return False
            save(self.path, payload)
        except (OSError, TypeError) as exc:
            self._report(exc)
            return False
        self.saves += 1
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                payload = self._payload()  # on the loop: a consistent snapshot
                if payload is not None:
                    await asyncio.to_thread(save, self.path, payload)
                    self.saves += 1
            except (OSError, TypeError) as exc:
                self._digest = None
                self._report(exc)

    def _report(self, exc: BaseException) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"aio-emulator: {stamp} could not save the state to {self.path}: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
