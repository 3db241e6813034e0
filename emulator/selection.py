"""Which scenario answers a request: the ``X-Emulator-Scenario`` header's, else the API key's,
else the server's; switching the server's scenario, and the hot reload of its file.

Each scenario in use is a :class:`~emulator.engine.ScenarioRuntime` (its compiled rules and
counters). Ready scenarios named by a header are compiled once and kept.

A serving server reads and compiles scenario files in a worker thread (:meth:`switch`,
:meth:`read_start`, :meth:`refresh`), so a big file never holds the event loop. Every switch
takes a ticket when it is asked for, and one asked for earlier never replaces one asked for
later, whichever finished reading first; a hot reload is dropped when a switch was applied
while its file was being read.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .engine import ModelResolver, ScenarioRuntime
from .errors import APIError, InvalidRequest
from .scenarios import Scenario, ScenarioError, Spec, library, load, loads

__all__ = ["RELOAD_CHECK_S", "Loaded", "ScenarioSelection", "ScenarioSpec"]

#: a ready scenario's name, a YAML file's path, a dict of the same structure, a list of those
#: (applied in order), or a Scenario
ScenarioSpec = Spec | Scenario
#: how often, at most, the server's scenario file is checked for changes
RELOAD_CHECK_S = 0.5
#: a changed file is read again once it has not changed for this long (a file replaced in place
#: is never applied half-written)
STABLE_S = 0.5


class Loaded(NamedTuple):
    """A scenario read and compiled, not in use yet (:meth:`ScenarioSelection.reset` takes
    one that :meth:`~ScenarioSelection.read_start` read)."""

    #: when it was asked for, among all switches (a later ticket wins)
    ticket: int
    runtime: ScenarioRuntime
    #: its cache key when it is made of ready scenarios
    ready: str | tuple[str, ...] | None
    #: the file to watch, and its modification time from before it was read
    watch: tuple[str, float] | None


@dataclass(slots=True)
class _Watch:
    """The server's scenario file: its modification time when it was read, and when it was
    last checked for a change."""

    path: str
    mtime: float
    checked: float  # time.monotonic() of the last check


class ScenarioSelection:
    """The scenarios of one emulator: the server's (``current``), each key's, and the ready
    ones a request header may name."""

    def __init__(
        self,
        start: ScenarioSpec,
        key_scenarios: Mapping[str, ScenarioSpec],
        *,
        seed: int,
        resolve_model: ModelResolver,
        clock: Callable[[], float],
    ) -> None:
        self.seed = seed
        self.resolve_model = resolve_model
        self.clock = clock
        self._start = start
        #: ready scenarios, and lists of ready scenarios, compiled once
        self._ready: dict[str | tuple[str, ...], ScenarioRuntime] = {}
        #: the last hot reload's problem, shown by the control API (None: none)
        self.reload_error: str | None = None
        self._watch: _Watch | None = None
        self._tickets = itertools.count(1)
        self._applied = 0  # the ticket of the switch in use
        self._reading = False  # a hot reload is reading the file
        self.by_key = {key: self._runtime(spec) for key, spec in key_scenarios.items()}
        self.current = self.use(start)

    def use(self, spec: ScenarioSpec) -> ScenarioRuntime:
        """Make ``spec`` the server's scenario now, reading any file right here (start-up,
        in-process use; a file alone is then watched for changes)."""
        self._apply(self._prepare(spec, next(self._tickets)))
        return self.current

    async def switch(self, spec: ScenarioSpec) -> ScenarioRuntime:
        """:meth:`use`, for a serving server: files are read in a worker thread. 409 when a
        switch asked for after this one was applied while this one was read."""
        return self._switched(await self._read(spec))

    async def switch_to_yaml(self, text: str, source: str) -> ScenarioRuntime:
        """:meth:`switch` to the scenario of a YAML document (a request's body), parsed in a
        worker thread."""
        ticket = next(self._tickets)
        loaded = await asyncio.to_thread(
            lambda: Loaded(ticket, self._compile(loads(text, source=source)), None, None)
        )
        return self._switched(loaded)

    def load_start(self) -> Loaded:
        """The start scenario, read again right here (for :meth:`reset`)."""
        return self._prepare(self._start, next(self._tickets))

    async def read_start(self) -> Loaded:
        """:meth:`load_start` in a worker thread (a serving server's reset)."""
        return await self._read(self._start)

    def for_request(self, key: str | None, header: bytes | None) -> ScenarioRuntime | None:
        """Precedence: the X-Emulator-Scenario header > the key's scenario > the server's.
        None: the server's scenario, whose file is due for a check: :meth:`refresh` gives it."""
        if header:
            name = header.decode("latin-1")
            if name not in library():  # never a path: clients must not read the server's files
                raise InvalidRequest(
                    f"X-Emulator-Scenario: {name[:80]!r} is not a ready scenario. "
                    f"Ready: {', '.join(sorted(library()))}"
                )
            return self._runtime(name)
        if key is not None and key in self.by_key:
            return self.by_key[key]
        watch = self._watch
        due = watch is not None and time.monotonic() - watch.checked >= RELOAD_CHECK_S
        return None if due and not self._reading else self.current

    def for_key(self, key: str) -> ScenarioRuntime:
        """The scenario that answers ``key``'s requests (no header)."""
        return self.by_key.get(key, self.current)

    def reset(self, start: Loaded | None = None) -> None:
        """Back to the start: the scenario the server started with, read again from its file
        (``start``, from :meth:`read_start`; else read here) and watched again, every counter of
        every scenario forgotten."""
        self._apply(start if start is not None else self.load_start())
        for runtime in {*self._ready.values(), *self.by_key.values(), self.current}:
            runtime.reset()

    async def refresh(self) -> ScenarioRuntime:
        """The server's scenario once its file is checked (when :meth:`for_request` says so):
        read again in a worker thread once it has stopped changing, while other requests are
        answered with the scenario in use; a broken edit keeps the running scenario and is
        reported."""
        watch = self._watch
        assert watch is not None
        watch.checked = time.monotonic()
        applied, self._reading = self._applied, True
        try:
            found = await asyncio.to_thread(_reread, watch.path, watch.mtime, self._compile)
        finally:
            self._reading = False
        if found is None or self._applied != applied:  # unchanged, or switched away meanwhile
            return self.current
        watch.mtime, result = found
        if isinstance(result, ScenarioError):
            self.reload_error = str(result)
            print(f"aio-emulator: kept scenario {self.current.scenario.name!r}; {result}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return self.current
        self.current = result
        self.reload_error = None
        print(f"aio-emulator: reloaded scenario {result.scenario.name!r} from {watch.path}",
              file=sys.stderr, flush=True)  # fmt: skip
        return result

    async def _read(self, spec: ScenarioSpec) -> Loaded:
        """:meth:`_prepare` in a worker thread, its ticket taken now."""
        ticket = next(self._tickets)
        ready = _ready_key(_one(spec))
        if ready is not None and ready in self._ready:  # compiled already: nothing to read
            return Loaded(ticket, self._ready[ready], ready, None)
        return await asyncio.to_thread(self._prepare, spec, ticket)

    def _switched(self, loaded: Loaded) -> ScenarioRuntime:
        if not self._apply(loaded):
            raise APIError(
                "scenario: another switch (PUT /_emulator/scenario or POST /_emulator/reset), "
                "asked for after this one, took effect while this one was being read; this one "
                "was not applied",
                status=409,
                type="invalid_request_error",
            )
        return self.current

    def _prepare(self, spec: ScenarioSpec, ticket: int) -> Loaded:
        """``spec`` read and compiled, nothing changed (safe in a worker thread)."""
        spec = _one(spec)
        ready = _ready_key(spec)
        if ready is not None and ready in self._ready:
            return Loaded(ticket, self._ready[ready], ready, None)
        path = None
        if isinstance(spec, str | os.PathLike) and str(spec) not in library():
            path = os.fspath(spec)
        mtime = _mtime(path) if path is not None else -1.0  # before reading: a later write shows
        scenario = spec if isinstance(spec, Scenario) else load(spec)
        watch = (path, mtime) if path is not None else None
        return Loaded(ticket, self._compile(scenario), ready, watch)

    def _apply(self, loaded: Loaded) -> bool:
        """Make ``loaded`` the server's scenario, unless a switch asked for later is in use
        (False)."""
        if loaded.ticket < self._applied:
            return False
        self._applied = loaded.ticket
        runtime = loaded.runtime
        if loaded.ready is not None:
            runtime = self._ready.setdefault(loaded.ready, runtime)
        self.current = runtime
        self.reload_error = None
        self._watch = None
        if loaded.watch is not None:
            self._watch = _Watch(*loaded.watch, time.monotonic())
        return True

    def _runtime(self, spec: ScenarioSpec) -> ScenarioRuntime:
        ready = _ready_key(spec)
        if ready is not None and ready in self._ready:
            return self._ready[ready]
        runtime = self._compile(spec if isinstance(spec, Scenario) else load(spec))
        if ready is not None:
            self._ready[ready] = runtime
        return runtime

    def _compile(self, scenario: Scenario) -> ScenarioRuntime:
        return ScenarioRuntime(scenario, self.seed, self.resolve_model, self.clock)


def _reread(
    path: str, mtime: float, compile: Callable[[Scenario], ScenarioRuntime]
) -> tuple[float, ScenarioRuntime | ScenarioError] | None:
    """The watched file, read and compiled again if it changed since ``mtime`` (with its new
    modification time); None if it has not, or is still being written (a later check reads
    it). Runs in a worker thread."""
    current = _mtime(path)
    if current == mtime or 0 <= time.time() - current < STABLE_S:
        return None
    try:
        return current, compile(load(path))
    except ScenarioError as exc:
        return current, exc


def _one(spec: ScenarioSpec) -> ScenarioSpec:
    """A list of one scenario as that scenario (``--scenario FILE`` is a list: its file is
    watched, its ready scenario shared with the header's)."""
    if isinstance(spec, list | tuple) and len(spec) == 1:
        return spec[0]
    return spec


def _ready_key(spec: ScenarioSpec) -> str | tuple[str, ...] | None:
    """The cache key of a ready scenario or of a list of ready scenarios (None: neither)."""
    ready = library()
    if isinstance(spec, str):
        return spec if spec in ready else None
    if isinstance(spec, list | tuple) and all(isinstance(s, str) and s in ready for s in spec):
        return tuple(str(s) for s in spec)
    return None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0
