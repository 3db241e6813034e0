"""The ``chat:`` section of a scenario: answer form, timing and scripted replies.

:func:`compile_chat` validates the raw section (every problem as ``file:line: chat.path:
message``, through the scenario loader's checker) into a :class:`ChatScenario`, whose
:meth:`ChatScenario.decide` picks the first rule matching a call. Rules are pure (no counters):
``nth``, ``every``, ``probability`` and rate limits are the general rules' job
(``match: {endpoint: chat}``), which apply first.

.. code-block:: yaml

    chat:
      body: bare            # or wrapped: {"code": 200, "message": "success", "data": {...}}
      stream: true          # the default of `stream` when a request omits it
      timing: {ttft_ms: 800, tokens_per_second: 50}   # real clock only
      rules:
        - name: weather
          match: {contains: weather}        # also regex, model, key, header
          tool_call: {name: get_weather, arguments: {city: Paris}}
        - match: {regex: "^hello"}
          reply: "Hello! How can I help?"
          fault: {cut_after: 3}             # or {malformed_at: 2}
        - match: {contains: overload}
          error: {status: 429, headers: {Retry-After: 2}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .core import Checker, Distribution, ErrorEffect
from .core import distribution as _distribution
from .core import error_effect as _error
from .core import header_match as _header
from .core import kind as _kind
from .core import regex as _regex
from .usage import content_text

__all__ = ["BODIES", "ChatCall", "ChatDecision", "ChatRule", "ChatScenario", "compile_chat"]

BODIES = ("bare", "wrapped")
SECTION_KEYS = ("body", "stream", "timing", "rules")
TIMING_KEYS = ("ttft_ms", "tokens_per_second")
RULE_KEYS = ("name", "match", "reply", "tool_call", "error", "fault")
MATCH_KEYS = ("contains", "regex", "model", "key", "header")
FAULT_KEYS = ("cut_after", "malformed_at")
MAX_TOKENS_PER_SECOND = 100_000


class ChatCall(NamedTuple):
    """What chat rules match on: the key, the headers (lower-case names) and the raw body."""

    key: str | None
    headers: Mapping[str, str]
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatDecision:
    """What a rule scripts. ``cut_after``/``malformed_at`` count stream chunks from 1."""

    rule: str | None = None
    reply: str | None = None
    tool_call: tuple[str, Mapping[str, Any] | None] | None = None  # (name, arguments)
    error: ErrorEffect | None = None
    cut_after: int | None = None
    malformed_at: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRule:
    label: str
    contains: tuple[str, ...] = ()
    regex: Any = None  # an RE2 pattern
    models: frozenset[str] | None = None
    keys: frozenset[str] | None = None
    header: tuple[str, str | None] | None = None
    decision: ChatDecision = field(default_factory=ChatDecision)

    def matches(self, call: ChatCall) -> bool:
        if self.keys is not None and call.key not in self.keys:
            return False
        if self.models is not None and call.body.get("model") not in self.models:
            return False
        if self.header is not None:
            value = call.headers.get(self.header[0])
            if value is None or (self.header[1] is not None and value != self.header[1]):
                return False
        if self.contains or self.regex is not None:
            text = last_user_text(call.body)
            if self.contains and not any(s in text.lower() for s in self.contains):
                return False
            if self.regex is not None and not self.regex.search(text[:20_000]):
                return False
        return True


NO_RULE = ChatDecision()


@dataclass(frozen=True, slots=True)
class ChatScenario:
    """A scenario's chat settings; the default one (no ``chat:`` section) answers bare,
    streams unless asked not to, without delay, with no rules."""

    wrapped: bool = False
    stream_default: bool = True
    ttft: Distribution | None = None
    tokens_per_second: float | None = None
    rules: tuple[ChatRule, ...] = ()

    def decide(self, call: ChatCall) -> ChatDecision:
        """The first matching rule's decision, or one that scripts nothing."""
        for rule in self.rules:
            if rule.matches(call):
                return rule.decision
        return NO_RULE


DEFAULT = ChatScenario()


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the newest user message of a raw (unvalidated) body, or ''."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


# -- compiling ------------------------------------------------------------------------------


def compile_chat(c: Checker, raw: Any, path: str = "chat") -> ChatScenario:
    """The ``chat:`` section ``raw`` compiled; problems go to the checker ``c``."""
    section = c.mapping(raw, path, SECTION_KEYS)
    body = section.get("body", "bare")
    c.choice(body, f"{path}.body", BODIES)
    stream = section.get("stream", True)
    if not isinstance(stream, bool):
        c.fail(f"{path}.stream", f"expected true or false, got {_kind(stream)}")
    timing = c.mapping(section.get("timing", {}), f"{path}.timing", TIMING_KEYS)
    ttft = None
    if "ttft_ms" in timing:
        ttft = _distribution(c, timing["ttft_ms"], f"{path}.timing.ttft_ms", ms=True)
    rate = None
    if "tokens_per_second" in timing:
        rate = c.number(timing["tokens_per_second"], f"{path}.timing.tokens_per_second",
                        low=0.001, high=MAX_TOKENS_PER_SECOND)  # fmt: skip
    rules: list[ChatRule] = []
    raw_rules = section.get("rules", [])
    if not isinstance(raw_rules, list):
        c.fail(f"{path}.rules", f"expected a list of rules, got {_kind(raw_rules)}")
        raw_rules = []
    for i, raw_rule in enumerate(raw_rules):
        rule = _rule(c, raw_rule, f"{path}.rules[{i}]")
        if rule is not None:
            rules.append(rule)
    return ChatScenario(
        wrapped=body == "wrapped",
        stream_default=stream is not False,
        ttft=ttft,
        tokens_per_second=float(rate) if rate is not None else None,
        rules=tuple(rules),
    )


def _rule(c: Checker, raw: Any, path: str) -> ChatRule | None:
    before = len(c.problems)
    r = c.mapping(raw, path, RULE_KEYS)
    label = path + (f" ({r['name']})" if isinstance(r.get("name"), str) else "")
    answers = [k for k in ("reply", "tool_call", "error") if k in r]
    if isinstance(raw, dict) and not answers and "fault" not in r:
        c.fail(path, "a chat rule needs an effect (allowed: reply, tool_call, error, fault)")
    if len(answers) > 1:
        c.fail(path, f"give at most one of reply, tool_call, error (got {', '.join(answers)})")
    reply = c.text(r["reply"], f"{path}.reply") if "reply" in r else None
    call = _tool_call(c, r["tool_call"], f"{path}.tool_call") if "tool_call" in r else None
    error = _error(c, r["error"], f"{path}.error") if "error" in r else None
    cut_after = malformed_at = None
    if "fault" in r:
        f = c.mapping(r["fault"], f"{path}.fault", FAULT_KEYS)
        if isinstance(r["fault"], dict) and len(f) != 1:
            c.fail(f"{path}.fault", f"give exactly one of: {', '.join(FAULT_KEYS)}")
        if "cut_after" in f:
            cut_after = c.number(
                f["cut_after"], f"{path}.fault.cut_after", integer=True, high=100_000
            )
        if "malformed_at" in f:
            malformed_at = c.number(f["malformed_at"], f"{path}.fault.malformed_at", low=1,
                                    integer=True, high=100_000)  # fmt: skip
        if error is not None:
            c.fail(f"{path}.fault", "an error answer has no stream to break: drop fault or error")
    match = _match(c, r.get("match", {}), f"{path}.match")
    if len(c.problems) > before:
        return None
    decision = ChatDecision(
        label, reply, call, error,
        int(cut_after) if cut_after is not None else None,
        int(malformed_at) if malformed_at is not None else None,
    )  # fmt: skip
    return ChatRule(label, decision=decision, **match)


def _match(c: Checker, raw: Any, path: str) -> dict[str, Any]:
    m = c.mapping(raw, path, MATCH_KEYS)
    contains: tuple[str, ...] = ()
    if "contains" in m:
        found = c.strings(m["contains"], f"{path}.contains")
        contains = tuple(s.lower() for s in sorted(found or ()))
    regex = _regex(c, m["regex"], f"{path}.regex") if "regex" in m else None
    models = c.strings(m["model"], f"{path}.model") if "model" in m else None
    keys = c.strings(m["key"], f"{path}.key") if "key" in m else None
    header = _header(c, m["header"], f"{path}.header") if "header" in m else None
    return {"contains": contains, "regex": regex, "models": models, "keys": keys, "header": header}


def _tool_call(c: Checker, raw: Any, path: str) -> tuple[str, Mapping[str, Any] | None] | None:
    if isinstance(raw, str):
        return raw, None
    t = c.mapping(raw, path, ("name", "arguments"))
    name = c.text(t.get("name"), f"{path}.name")
    arguments = t.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        c.fail(
            f"{path}.arguments",
            f"expected a mapping (the call's JSON arguments), got {_kind(arguments)}",
        )
    return (name, arguments) if name is not None else None
