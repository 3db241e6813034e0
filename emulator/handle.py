"""The handle a test gets from the pytest plugin's fixtures: where the emulator is, a key to
use, and control over the emulator (clock, credits, scenario, journal), through the operations
of :class:`~emulator.service.Emulator`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from .api import route
from .clock import VirtualClock
from .marker import MARKER, find_scenario
from .queries import (
    RequestFilter,
    backing_off_problem,
    deliveries,
    intervals,
    polling_too_often,
)
from .scenarios import Rule, Spec, parse_rule
from .tasks import EndlessTasks, observe

if TYPE_CHECKING:
    from .clock import Clock
    from .service import Emulator

__all__ = [
    "AioEmulatorError", "Checks", "Direct", "EmulatorHandle", "OnLoop", "Runner", "describe",
    "is_unserved",
]  # fmt: skip


class AioEmulatorError(RuntimeError):
    """A handle method cannot do what was asked (the message says why and what to do)."""


@dataclass(slots=True)
class Checks:
    """What the after-test checks have already reported (shared by handles on one emulator)."""

    allow_unserved: bool
    journal_seq: int = 0
    server_errors: int = 0


#: the longest a live handle waits for the server's event loop to run one of its methods
LOOP_TIMEOUT_S = 30.0

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


class Runner(Protocol):
    """Where a handle's work runs (its result comes back)."""

    def __call__(self, work: Callable[[], _T]) -> _T: ...


class Direct:
    """Runs a handle's work right here (no server thread to run it on)."""

    def __call__(self, work: Callable[[], _T]) -> _T:
        return work()


class OnLoop:
    """Runs a handle's work on the live server's event loop and waits for its result, so it
    never races a request the server is answering (already on that loop: runs it at once)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, work: Callable[[], _T]) -> _T:
        __tracebackhide__ = True
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop or not self.loop.is_running():  # (a stopped server: no race)
            return work()
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(work())
            except BaseException as exc:  # (pytest's outcomes too: they travel to the test)
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        try:
            return done.result(LOOP_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise AioEmulatorError(
                f"the live emulator's event loop did not run a handle call within "
                f"{LOOP_TIMEOUT_S:g} s: something blocks the server thread"
            ) from None


def _on_loop(method: _F) -> _F:
    """Run the method through the handle's runner (the live server's loop, or right here)."""

    @functools.wraps(method)
    def wrapper(self: EmulatorHandle, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return self._run(lambda: method(self, *args, **kwargs))

    return cast(_F, wrapper)


class EmulatorHandle:
    """One test's view of the emulator: where it is, a key to use, and control over it."""

    def __init__(
        self,
        emulator: Emulator,
        url: str,
        api_key: str,
        checks: Checks,
        *,
        places: Sequence[tuple[Path, str]] = (),
        run: Runner | None = None,
    ) -> None:
        self.emulator = emulator
        #: where the handle's methods run: the live server's loop, or right here (in-process:
        #: with the webhook deliveries they start)
        self._run: Runner = run or Direct()
        #: base URL to hand to the code under test
        self.url = url
        #: a valid API key (its balance is the marker's ``credits`` when set)
        self.api_key = api_key
        #: what the after-test checks have reported so far (shared by the handles of one
        #: emulator in one test: both fixtures together)
        self.checks = checks
        #: where a relative scenario path is looked for (folder, what it is), in order
        self._places = places

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} key={self.api_key!r}>"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of :attr:`api_key`."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    @_on_loop
    def now(self) -> float:
        """The emulator's time (seconds since the Unix epoch)."""
        return self.emulator.clock.now()

    @_on_loop
    def use_scenario(self, spec: Spec) -> None:
        """Switch to a ready scenario by name, a scenario YAML file, a dict, or a list of those
        (applied in order), from now on. A relative path is looked for as the marker's is."""
        self.emulator.use_scenario(find_scenario(spec, self._places))

    # -- rules ----------------------------------------------------------------------------

    def add_rule(self, rule: Mapping[str, Any]) -> str:
        """Put a scenario rule (the dict a YAML rule is, validated the same way) in front of
        the rules of the scenario in use, for this test only; its label (the journal's
        ``rule``) is returned. ``use_scenario()`` starts again without it."""
        return self._add(parse_rule(rule, source="add_rule()", label="add_rule()"))

    def fail_next_create(self, status: int = 500, message: str | None = None) -> str:
        """The next create is answered with error ``status`` (and ``message``)."""
        error: dict[str, Any] = {"status": status}
        if message is not None:
            error["message"] = message
        return self._helper("fail_next_create", {"endpoint": "create"}, {"error": error})

    @_on_loop
    def fail_next_task(self, reason: str | None = None) -> str:
        """The next task created fails with ``reason`` as its ``error`` (default: its route's,
        e.g. ``Image generation failed``, ``Video generation failed``), when the scenario's
        timing ends it (at once under ``instant``)."""
        task: dict[str, Any] = {"outcome": "fail"}
        if reason is not None:
            task["error"] = reason
        rule = self._parse_helper("fail_next_task", {"endpoint": "create"}, {"task": task})
        timing = self.emulator.scenarios.for_key(self.api_key).scenario.task
        if timing is not None and rule.task is not None:  # the scenario's timing, not the model's
            rule = replace(
                rule, task=replace(rule.task, queued=timing.queued, running=timing.running)
            )
        return self._add(rule)

    def rate_limit_next_poll(self, retry_after: float = 1) -> str:
        """The next poll is answered 429 ``rate_limit_exceeded`` with ``Retry-After``."""
        error = {"status": 429, "headers": {"Retry-After": retry_after}}
        return self._helper("rate_limit_next_poll", {"endpoint": "task"}, {"error": error})

    def _helper(self, name: str, match: dict[str, Any], effect: dict[str, Any]) -> str:
        return self._add(self._parse_helper(name, match, effect))

    def _parse_helper(self, name: str, match: dict[str, Any], effect: dict[str, Any]) -> Rule:
        data = {"match": {**match, "nth": 1}, **effect}
        return parse_rule(data, source=f"{name}()", label=f"{name}()")

    @_on_loop
    def _add(self, rule: Rule) -> str:
        self.emulator.scenarios.for_key(self.api_key).add_rule(rule)
        return rule.label

    # -- time -----------------------------------------------------------------------------

    @_on_loop
    def advance(self, seconds: float) -> float:
        """Move the virtual clock ``seconds`` forward; returns the new time. Pass it to the
        code under test as its ``sleep`` and back-off costs no real time. Webhooks due by then
        (a task's end, a delay, a retry) are sent (in-process: before it returns)."""
        self._virtual_clock("advance()")
        return self.emulator.advance(seconds)

    @_on_loop
    def settle(self) -> float:
        """Advance the virtual clock until every task has finished; returns the seconds moved.
        Their webhooks are sent (in-process: before it returns); a retry still waits for
        :meth:`advance`.

        Raises :class:`AioEmulatorError` naming the tasks that never finish on their own.
        """
        self._virtual_clock("settle()")
        try:
            return self.emulator.advance_to_end()
        except EndlessTasks as exc:
            raise AioEmulatorError(
                f"settle(): {exc}. Advance by a fixed time with advance(seconds) instead."
            ) from None

    def _virtual_clock(self, what: str) -> None:
        if self.emulator.clock.mode != "virtual":
            raise AioEmulatorError(
                f"{what} needs the virtual clock, and this test runs on the real clock. "
                f"Drop clock='real' from @pytest.mark.{MARKER}(...) (the virtual clock is the "
                "default), or wait for real time to pass."
            )

    # -- credits --------------------------------------------------------------------------

    @_on_loop
    def set_credits(self, key: str, credits: int) -> None:
        """Set ``key``'s balance."""
        self.emulator.set_balance(key, credits)

    @_on_loop
    def credits(self, key: str | None = None) -> int:
        """The balance of ``key`` (default: :attr:`api_key`), after settling ended tasks."""
        return self.emulator.account(key or self.api_key).balance

    @_on_loop
    def account(self, key: str | None = None) -> dict[str, object]:
        """``{"key", "credits", "reserved", "spent"}`` of ``key`` (default: :attr:`api_key`)."""
        return self.emulator.account(key or self.api_key).as_dict()

    # -- what happened --------------------------------------------------------------------

    @_on_loop
    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The request journal of this test, oldest first (``method``, ``path``, ``status``,
        ``body``, ``error``, ``task_id``, ``rule``, ``at`` (emulator time), ``wall``, ..., and
        for a chat call ``response``: the ``chat.completion`` object it answered, whether it
        was streamed, the credits charged and what a fault let through),
        the entries that match every filter given (keyword-only, see
        :class:`~emulator.queries.RequestFilter`): ``endpoint`` (``create``, ``task``,
        ``image``, ``chat``, ``webhook``, ``unknown``), ``status`` (an int or a collection, e.g.
        ``range(400, 500)``), ``model`` (a name or alias: a poll or download counts as its
        task's model, a chat call as the model it asked for), ``key``, ``path`` (a prefix),
        ``method``, ``task_id``."""
        query = RequestFilter(**filters)
        query.model = self._model_id(query.model)
        entries = self.emulator.journal.entries()
        return query.select(entries, self._model_of(entries))

    def last_request(self, **filters: Any) -> dict[str, Any]:
        """The newest entry of :meth:`requests` with the same filters; ``AssertionError``
        naming the filters when there is none."""
        __tracebackhide__ = True
        found = self.requests(**filters)
        if not found:
            given = ", ".join(f"{k}={v!r}" for k, v in filters.items()) or "no filter"
            raise AssertionError(
                f"no request in the journal matches {given} "
                f"({len(self.emulator.journal)} request(s) journaled in this test)"
            )
        return found[-1]

    @_on_loop
    def webhooks(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The webhook deliveries of this test (of ``task_id`` when given), oldest first, one
        per attempt: ``url``, ``task_id``, ``attempt`` (from 1; 0: not sent at all, ``error``
        says why), ``status`` (the receiver's, None without an answer), ``error``, ``body``
        (the JSON sent), ``at`` (the emulator's clock) and ``duplicate``."""
        return deliveries(self.emulator.journal.entries(), task_id)

    def _model_id(self, model: str | None) -> str | None:
        found = self.emulator.catalogue.resolve(model) if model is not None else None
        return found.id if found is not None else model

    def _model_of(self, entries: list[dict[str, Any]]) -> Callable[[Mapping[str, Any]], str | None]:
        """An entry's model: a create's body names it; others belong to their task's."""
        created: dict[str, str] = {}
        for entry in entries:
            body = entry.get("body")
            if entry.get("task_id") and isinstance(body, dict) and "model" in body:
                created.setdefault(entry["task_id"], str(body["model"]))

        def model_of(entry: Mapping[str, Any]) -> str | None:
            body = entry.get("body")
            asked = entry.get("kind") in (None, "chat")  # a request or a chat call, not a webhook
            named = body.get("model") if isinstance(body, dict) and asked else None
            task_id = entry.get("task_id")
            if not isinstance(named, str) and task_id is not None:
                task = self.emulator.tasks.peek(task_id)
                named = task.model if task is not None else created.get(task_id)
            return self._model_id(named) if isinstance(named, str) else None

        return model_of

    def polls(self, task_id: str) -> int:
        """How many times the task was polled (``GET /api/v1/tasks/{task_id}``)."""
        return len(self._polls(task_id))

    def poll_intervals(self, task_id: str, *, wall: bool = False) -> list[float]:
        """Seconds between consecutive polls of the task, on the emulator's clock (virtual
        time moved by :meth:`advance`, or real time), or on the wall clock if ``wall``."""
        field = "wall" if wall else "at"
        return intervals(entry[field] for entry in self._polls(task_id))

    def assert_polled_at_most_every(
        self, task_id: str, seconds: float, *, wall: bool = False
    ) -> None:
        """Fail, listing the offending polls, if the task was polled twice less than
        ``seconds`` apart (on the emulator's clock; ``wall=True``: the wall clock)."""
        __tracebackhide__ = True
        gaps = self._checked_intervals(task_id, wall)
        problem = polling_too_often(task_id, gaps, seconds, _clock_name(wall))
        if problem is not None:
            raise AssertionError(problem)

    def assert_backed_off(self, task_id: str, *, wall: bool = False) -> None:
        """Fail unless the waits between the task's polls never shrink (at least 3 polls)."""
        __tracebackhide__ = True
        gaps = self._checked_intervals(task_id, wall)
        problem = backing_off_problem(task_id, gaps, _clock_name(wall))
        if problem is not None:
            raise AssertionError(problem)

    def _checked_intervals(self, task_id: str, wall: bool) -> list[float]:
        __tracebackhide__ = True
        if not self._polls(task_id):
            polled = sorted({e["task_id"] for e in self.requests(endpoint="task", method="GET")})
            raise AssertionError(f"task {task_id} was never polled; polled tasks: {polled}")
        return self.poll_intervals(task_id, wall=wall)

    def _polls(self, task_id: str) -> list[dict[str, Any]]:
        return self.requests(endpoint="task", method="GET", task_id=task_id)

    @_on_loop
    def tasks(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every task as its wire body plus ``key``, ``polls`` and ``state``, oldest first."""
        return self.emulator.task_listing(self.url, key)

    def task(self, task_id: str) -> dict[str, Any]:
        """One task as in :meth:`tasks` (``KeyError`` if there is no such task)."""
        for body in self.tasks():
            if body["task_id"] == task_id:
                return body
        raise KeyError(f"no task {task_id!r}; tasks: {[t['task_id'] for t in self.tasks()]}")

    def unserved(self) -> list[dict[str, Any]]:
        """Journal entries the emulator could not serve: unknown path, bad key, wrong method."""
        return [entry for entry in self.requests() if is_unserved(entry)]

    # -- after the test -------------------------------------------------------------------

    @_on_loop
    def hints(self) -> list[str]:
        """Why a failed test may have waited in vain: tasks still running on a virtual clock
        that nobody advanced during the test (code that sleeps for real and polls)."""
        clock = self.emulator.clock
        if not isinstance(clock, VirtualClock) or clock.now() != clock.start:
            return []
        now = clock.now()
        words: dict[str, int] = {}
        for task in self.emulator.tasks.all():
            state = observe(task, now).state
            if not state.terminal:
                word = self.emulator.scenarios.for_key(task.key).words[state]
                words[word] = words.get(word, 0) + 1
        if not words:
            return []
        counts = ", ".join(f"{n} task(s) still {word}" for word, n in words.items())
        return [
            f"{MARKER}: {counts} on a virtual clock nobody advanced: call handle.advance(...) "
            "or handle.settle(), or use the 'instant' scenario"
        ]

    @_on_loop
    def problems(self) -> list[str]:
        """New problems since the last call: server tracebacks, then unserved requests (unless
        the marker allows them). The plugin fails a passing test that has any."""
        checks = self.checks
        problems: list[str] = []
        errors = self.emulator.server_errors[checks.server_errors :]
        checks.server_errors = len(self.emulator.server_errors)
        if errors:
            problems.append(
                f"{MARKER}: the emulator raised {len(errors)} exception(s) while serving this "
                "test (the client got a 500). This is a bug in the emulator; its traceback:\n\n"
                + "\n".join(errors)
            )
        entries = self.emulator.journal.entries(since=checks.journal_seq)
        if entries:
            checks.journal_seq = entries[-1]["seq"]
        unserved = [e for e in entries if is_unserved(e)]
        if unserved and not checks.allow_unserved:
            bullets = "\n".join(f"- {describe(entry)}" for entry in unserved)
            problems.append(
                f"{MARKER}: the emulator could not serve {len(unserved)} request(s):\n{bullets}\n"
                f"If this is on purpose, mark the test "
                f"@pytest.mark.{MARKER}(allow_unserved=True)."
            )
        return problems


def _clock_name(wall: bool) -> str:
    return "on the wall clock" if wall else "on the emulator's clock"


def is_unserved(entry: Mapping[str, Any]) -> bool:
    if entry.get("rule") or entry.get("kind") == "webhook":  # on purpose, or not a request
        return False
    status = entry["status"]
    return status in (401, 405) or (status == 404 and route(entry["path"]) is None)


def describe(entry: Mapping[str, Any]) -> str:
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"{entry['method']} {entry['path']}{query} -> {entry['status']}: {entry.get('error')}"
