"""Which scenario answers a request: the ``X-Emulator-Scenario`` header's, else the API key's,
else the server's; and the hot reload of the server's scenario file.

Each scenario in use is a :class:`~emulator.engine.ScenarioRuntime` (its compiled rules and
counters). Ready scenarios named by a header are compiled once and kept.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping

from .engine import ModelResolver, ScenarioRuntime
from .errors import InvalidRequest
from .scenarios import Scenario, ScenarioError, Spec, library, load

__all__ = ["RELOAD_CHECK_S", "ScenarioSelection", "ScenarioSpec"]

#: a ready scenario's name, a YAML file's path, a dict of the same structure, a list of those
#: (applied in order), or a Scenario
ScenarioSpec = Spec | Scenario
#: how often, at most, the server's scenario file is checked for changes
RELOAD_CHECK_S = 0.5
#: a changed file is read again once it has not changed for this long (a file replaced in place
#: is never applied half-written)
STABLE_S = 0.5


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
        self._watch: tuple[str, float, float] | None = None  # (path, mtime, last check)
        self.by_key = {key: self._runtime(spec) for key, spec in key_scenarios.items()}
        self.current = self.use(start)

    def use(self, spec: ScenarioSpec) -> ScenarioRuntime:
        """Make ``spec`` the server's scenario (a file, alone, is then watched for changes)."""
        if isinstance(spec, list | tuple) and len(spec) == 1:
            spec = spec[0]  # one file in a list (``--scenario FILE``) is watched too
        runtime = self._runtime(spec)
        self.current = runtime
        self.reload_error = None
        self._watch = None
        if isinstance(spec, str | os.PathLike) and str(spec) not in library():
            path = os.fspath(spec)
            self._watch = (path, _mtime(path), time.monotonic())
        return runtime

    def for_request(self, key: str | None, header: bytes | None) -> ScenarioRuntime:
        """Precedence: the X-Emulator-Scenario header > the key's scenario > the server's."""
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
        if self._watch is not None:
            self._maybe_reload()
        return self.current

    def for_key(self, key: str) -> ScenarioRuntime:
        """The scenario that answers ``key``'s requests (no header)."""
        return self.by_key.get(key, self.current)

    def reset(self) -> None:
        """Back to the start: the scenario the server started with, read again from its file
        (and watched again), every counter of every scenario forgotten."""
        self.current = self.use(self._start)
        for runtime in {*self._ready.values(), *self.by_key.values(), self.current}:
            runtime.reset()

    def _runtime(self, spec: ScenarioSpec) -> ScenarioRuntime:
        ready = _ready_key(spec)
        if ready is not None and ready in self._ready:
            return self._ready[ready]
        scenario = spec if isinstance(spec, Scenario) else load(spec)
        runtime = ScenarioRuntime(scenario, self.seed, self.resolve_model, self.clock)
        if ready is not None:
            self._ready[ready] = runtime
        return runtime

    def _maybe_reload(self) -> None:
        """Hot reload of the scenario file, checked at most twice a second and read once it has
        stopped changing; a broken edit keeps the running scenario and is reported."""
        assert self._watch is not None
        path, mtime, checked = self._watch
        now = time.monotonic()
        if now - checked < RELOAD_CHECK_S:
            return
        current = _mtime(path)
        self._watch = (path, mtime, now)
        if current == mtime:
            return
        if 0 <= time.time() - current < STABLE_S:  # still being written: a later request reloads
            return
        self._watch = (path, current, now)
        try:
            scenario = load(path)
        except ScenarioError as exc:
            self.reload_error = str(exc)
            print(f"aio-emulator: kept scenario {self.current.scenario.name!r}; {exc}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        self.current = ScenarioRuntime(scenario, self.seed, self.resolve_model, self.clock)
        self.reload_error = None
        print(f"aio-emulator: reloaded scenario {scenario.name!r} from {path}", file=sys.stderr,
              flush=True)  # fmt: skip


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
