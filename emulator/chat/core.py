"""The seam: everything the chat package takes from the rest of the emulator, in one module.

No other module of ``emulator/chat/`` imports from the core (``emulator.*`` outside this
package): the names re-exported below, and the methods of :class:`Core`, which is the emulator
as the chat handler sees it. A chat call is an :class:`~emulator.api.Call` like any other, read
and decided by the same :func:`~emulator.api.read_json_call` as a create.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api import CLIENT_GONE, Call, EarlyFault, read_json_call
from ..engine import Decision, as_api_error
from ..errors import APIError, InsufficientCredits, InvalidRequest, method_not_allowed, server_error
from ..faults import FaultResponse, NetworkFault, cut
from ..openapi_parts import error_responses, object_schema, preflight, ref
from ..scenarios.checks import Checker
from ..scenarios.checks import check_distribution as distribution
from ..scenarios.checks import check_error as error_effect
from ..scenarios.checks import check_header as header_match
from ..scenarios.checks import check_regex as regex
from ..scenarios.checks import kind_of as kind
from ..scenarios.model import Distribution, ErrorEffect
from ..wire import CHAT_PATH, dumps, json_reply, send_reply, success

if TYPE_CHECKING:
    from ..engine import ScenarioRuntime
    from ..service import Emulator

__all__ = [
    "CHAT_PATH",
    "CLIENT_GONE",
    "APIError",
    "Call",
    "Checker",
    "Core",
    "Decision",
    "Distribution",
    "EarlyFault",
    "ErrorEffect",
    "FaultResponse",
    "InvalidRequest",
    "NetworkFault",
    "as_api_error",
    "cut",
    "distribution",
    "dumps",
    "error_effect",
    "error_responses",
    "header_match",
    "json_reply",
    "kind",
    "method_not_allowed",
    "object_schema",
    "preflight",
    "ref",
    "regex",
    "runtime",
    "send_reply",
    "server_error",
    "success",
]


class Core:
    """One emulator, through the operations chat needs."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    @property
    def seed(self) -> int:
        """The emulator's seed (replies derive from it and the request)."""
        return self.emulator.seed

    @property
    def real_clock(self) -> bool:
        """Streams are paced on a real clock only (a virtual one never costs real time)."""
        return self.emulator.clock.mode == "real"

    def now(self) -> float:
        return self.emulator.clock.now()

    async def read(self, call: Call) -> tuple[str, dict[str, object], Decision]:
        """The key (401), the JSON body and the scenario's decision (its latency waited out,
        its error raised), then the body's own 400: as a create is read."""
        return await read_json_call(self.emulator, call, "chat", "chat")

    def new_id(self) -> str:
        """``chatcmpl_`` and 24 hex digits from the emulator's seeded generator."""
        return f"chatcmpl_{self.emulator.rng.getrandbits(96):024x}"

    def sample(self, dist: Distribution) -> float:
        """A duration drawn from the emulator's seeded generator."""
        return dist.sample(self.emulator.rng)

    def reserve(self, key: str, amount: int) -> None:
        """Hold ``amount`` credits, or :class:`InsufficientCredits` (402)."""
        emulator = self.emulator
        try:
            emulator.ledger.reserve(key, amount)
        except InsufficientCredits:  # refunds of ended tasks not settled yet may cover it
            emulator.settle()
            emulator.ledger.reserve(key, amount)

    def settle(self, key: str, reserved: int, actual: int) -> None:
        self.emulator.ledger.settle(key, reserved, actual)

    def refund(self, key: str, amount: int) -> None:
        self.emulator.ledger.refund(key, amount)

    def record_server_error(self, exc: BaseException) -> None:
        """Keep a bug's traceback (the pytest plugin fails the test with it)."""
        self.emulator.record_server_error(exc)

    def journal(self, call: Call, status: int, error: str | None, response: str | None) -> None:
        """Journal one chat call (``kind`` "chat"), with its answer as JSON text."""
        journal = self.emulator.journal
        now = self.emulator.clock.now()
        journal.append(call.entry(journal.next_seq(), status, error, now, "chat", response))


def runtime(call: Call) -> ScenarioRuntime:
    """The scenario that decided ``call`` (set by :meth:`Core.read`)."""
    assert call.runtime is not None, "the scenario decides before the work is done"
    return call.runtime
