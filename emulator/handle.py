"""The handle a test gets from the pytest plugin's fixtures: where the emulator is, a key to
use, and control over the emulator (clock, credits, scenario, journal), through the operations
of :class:`~emulator.service.Emulator`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

from .api import route
from .marker import MARKER
from .tasks import EndlessTasks
from .wire import task_path

if TYPE_CHECKING:
    from .clock import Clock
    from .service import Emulator

__all__ = ["AioEmulatorError", "Checks", "EmulatorHandle", "describe", "is_unserved"]


class AioEmulatorError(RuntimeError):
    """A handle method cannot do what was asked (the message says why and what to do)."""


@dataclass(slots=True)
class Checks:
    """What the after-test checks have already reported (shared by handles on one emulator)."""

    allow_unserved: bool
    journal_seq: int = 0
    server_errors: int = 0


class EmulatorHandle:
    """One test's view of the emulator: where it is, a key to use, and control over it."""

    def __init__(self, emulator: Emulator, url: str, api_key: str, checks: Checks) -> None:
        self.emulator = emulator
        #: base URL to hand to the code under test
        self.url = url
        #: a valid API key (its balance is the marker's ``credits`` when set)
        self.api_key = api_key
        self._checks = checks

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} key={self.api_key!r}>"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header of :attr:`api_key`."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def clock(self) -> Clock:
        return self.emulator.clock

    def now(self) -> float:
        """The emulator's time (seconds since the Unix epoch)."""
        return self.emulator.clock.now()

    def use_scenario(self, spec: str | PathLike[str] | Mapping[str, Any]) -> None:
        """Switch to a ready scenario by name, a scenario YAML file or a dict, from now on."""
        self.emulator.use_scenario(spec)

    # -- time -----------------------------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move the virtual clock ``seconds`` forward; returns the new time. Pass it to the
        code under test as its ``sleep`` and back-off costs no real time."""
        self._virtual_clock("advance()")
        return self.emulator.advance(seconds)

    def settle(self) -> float:
        """Advance the virtual clock until every task has finished; returns the seconds moved.

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

    def set_credits(self, key: str, credits: int) -> None:
        """Set ``key``'s balance."""
        self.emulator.set_balance(key, credits)

    def credits(self, key: str | None = None) -> int:
        """The balance of ``key`` (default: :attr:`api_key`), after settling ended tasks."""
        return self.emulator.account(key or self.api_key).balance

    def account(self, key: str | None = None) -> dict[str, object]:
        """``{"key", "credits", "reserved", "spent"}`` of ``key`` (default: :attr:`api_key`)."""
        return self.emulator.account(key or self.api_key).as_dict()

    # -- what happened --------------------------------------------------------------------

    def requests(self, key: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The request journal of this test, oldest first (``method``, ``path``, ``status``,
        ``body``, ``error``, ``task_id``, ``at`` (emulator time), ``wall``, ...)."""
        return self.emulator.journal.entries(key=key, path=path)

    def polls(self, task_id: str) -> int:
        """How many times the task was polled (``GET /api/v1/tasks/{task_id}``)."""
        return len(self._polls(task_id))

    def poll_intervals(self, task_id: str, *, wall: bool = False) -> list[float]:
        """Seconds between consecutive polls of the task, on the emulator's clock (virtual
        time moved by :meth:`advance`, or real time), or on the wall clock if ``wall``."""
        field = "wall" if wall else "at"
        times = [entry[field] for entry in self._polls(task_id)]
        return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]

    def _polls(self, task_id: str) -> list[dict[str, Any]]:
        path = task_path(task_id)
        return [e for e in self.emulator.journal.entries(path=path) if e["method"] == "GET"]

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

    def _problems(self) -> list[str]:
        """New problems since the last call: server tracebacks, then unserved requests."""
        checks = self._checks
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


def is_unserved(entry: Mapping[str, Any]) -> bool:
    if entry.get("rule") or entry.get("kind") == "webhook":  # on purpose, or not a request
        return False
    status = entry["status"]
    return status in (401, 405) or (status == 404 and route(entry["path"]) is None)


def describe(entry: Mapping[str, Any]) -> str:
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"{entry['method']} {entry['path']}{query} -> {entry['status']}: {entry.get('error')}"
