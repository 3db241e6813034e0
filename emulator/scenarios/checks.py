"""Validation of scenario data into a :class:`~emulator.scenarios.model.Scenario`: every
problem collected and reported as ``file:line: path.to.key: what is wrong (allowed: ...)``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import re2

from ..catalogue import Catalogue
from ..wire import error_type
from .model import (
    ENDPOINTS,
    FAULTS,
    IMAGE_MODES,
    OUTCOMES,
    STATUS_KEYS,
    Distribution,
    ErrorEffect,
    ImageEffect,
    Match,
    RateLimit,
    Rule,
    Scenario,
    ScenarioError,
    TaskEffect,
    WebhookEffect,
)

__all__ = [
    "MATCH_KEYS", "MAX_REGEX", "RULE_KEYS", "TOP_KEYS", "Checker", "check_distribution",
    "check_error", "check_header", "check_regex", "kind_of", "parse", "parse_rule",
]  # fmt: skip

#: longest regular expression a rule may hold
MAX_REGEX = 500


class Checker:
    """Collects every problem with its line instead of stopping at the first."""

    def __init__(self, source: str, lines: Mapping[str, int] | None) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(self._where(path, message))

    def warn(self, path: str, message: str) -> None:
        """A problem that does not stop the scenario from loading (shown by validate)."""
        self.warnings.append(self._where(path, message))

    def _where(self, path: str, message: str) -> str:
        if self.lines is None:  # data given in code, not read from a file: no lines to name
            return f"{self.source}: {path or '(top)'}: {message}"
        line = self.lines.get(path)
        probe = path
        while line is None and probe:  # the closest enclosing key that has a line
            shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
            probe = "" if shorter == probe else shorter
            line = self.lines.get(probe)
        return f"{self.source}:{line or 1}: {path or '(top)'}: {message}"

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {kind_of(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key (allowed: {', '.join(allowed)})",
                )
        return value

    def number(self, value: Any, path: str, *, low: float = 0.0, high: float = math.inf,
               integer: bool = False) -> float | None:  # fmt: skip
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or value != value:
            self.fail(
                path, f"expected {'an integer' if integer else 'a number'}, got {kind_of(value)}"
            )
            return None
        if not low <= value <= high:
            bound = f"{low:g} to {high:g}" if high != math.inf else f"at least {low:g}"
            self.fail(path, f"{value} is out of range (allowed: {bound})")
            return None
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str | None:
        if value not in allowed:
            self.fail(path, f"{value!r} is not one of: {', '.join(allowed)}")
            return None
        return str(value)

    def text(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {kind_of(value)}")
            return None
        return value

    def strings(self, value: Any, path: str) -> frozenset[str] | None:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) for i in items) or not items:
            self.fail(path, "expected a string or a list of strings")
            return None
        return frozenset(items)


TOP_KEYS = (
    "name", "description", "seed", "strict", "status_words", "answers", "defaults", "rules",
    "chat",
)  # fmt: skip
#: the forms a create route can answer in, by route ([choice] lines of the contract): the task
#: to poll (the default), the finished task body at once, the audio bytes at once, the bare
#: create answer an older page shows
ANSWERS: Mapping[str, tuple[str, ...]] = {
    "speech": ("task", "audio"),
    "remove-bg": ("task", "finished"),
    "face-swap": ("task", "finished"),
    "upscale": ("task", "finished"),
    "music": ("task", "bare"),
}


def parse(data: Any, *, source: str = "<dict>", lines: Mapping[str, int] | None = None) -> Scenario:
    """Validate plain data into a Scenario, or raise ScenarioError listing every problem."""
    c = Checker(source, lines or {})
    top = c.mapping(data, "", TOP_KEYS)
    name = c.text(top.get("name"), "name") if "name" in top else None
    if "name" not in top and isinstance(data, dict):
        c.fail("name", "is required")
    description = top.get("description", "")
    if not isinstance(description, str):
        c.fail("description", f"expected a string, got {kind_of(description)}")
    seed = top.get("seed")
    if seed is not None:
        c.number(seed, "seed", integer=True, high=2**63)
    strict = top.get("strict", False)
    if not isinstance(strict, bool):
        c.fail("strict", f"expected true or false, got {kind_of(strict)}")
    words: dict[str, str] = {}
    if "status_words" in top:
        raw = c.mapping(top["status_words"], "status_words", STATUS_KEYS)
        for key, value in raw.items():
            if key in STATUS_KEYS and c.text(value, f"status_words.{key}") is not None:
                words[key] = value
    answers: dict[str, str] = {}
    if "answers" in top:
        raw = c.mapping(top["answers"], "answers", tuple(ANSWERS))
        for route, form in raw.items():
            if route in ANSWERS and c.choice(form, f"answers.{route}", ANSWERS[route]):
                answers[route] = form
    defaults = c.mapping(top.get("defaults", {}), "defaults", ("latency", "task"))
    latency = (
        check_distribution(c, defaults["latency"], "defaults.latency", ms=True)
        if "latency" in defaults
        else None
    )
    task = _task(c, defaults["task"], "defaults.task") if "task" in defaults else None
    rules_raw = top.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(rules_raw, list):
        c.fail("rules", f"expected a list of rules, got {kind_of(rules_raw)}")
    else:
        for i, raw_rule in enumerate(rules_raw):
            rule = _rule(c, raw_rule, f"rules[{i}]")
            if rule is not None:
                rules.append(rule)
    chat = None
    if "chat" in top:  # chat's own section, checked by its own package with the same checker
        from ..chat.rules import compile_chat

        chat = compile_chat(c, top["chat"], "chat")
    if c.problems:
        raise ScenarioError(c.problems)
    return Scenario(
        name=str(name), description=description, source=source, seed=seed, strict=strict,
        status_words=words, answers=answers, latency=latency, task=task, rules=tuple(rules),
        warnings=tuple(c.warnings), chat=chat,
    )  # fmt: skip


def parse_rule(data: Any, *, source: str, label: str) -> Rule:
    """Validate one rule given in code (``handle.add_rule({...})``), as a scenario's rules are;
    problems read ``{source}: rule.match.endpoint: ...``; the rule is labelled ``label``, with
    its ``name`` when it has one."""
    c = Checker(source, None)
    rule = _rule(c, data, "rule")
    if c.problems or rule is None:
        raise ScenarioError(c.problems)
    name = data.get("name")
    return replace(rule, label=f"{label} ({name})" if isinstance(name, str) else label)


RULE_KEYS = ("name", "match", "latency", "error", "fault", "task", "rate_limit")
MATCH_KEYS = (
    "endpoint", "route", "model", "prompt_contains", "prompt_regex", "size", "aspect_ratio",
    "quality", "key", "header", "nth", "every", "probability",
)  # fmt: skip


def _rule(c: Checker, raw: Any, path: str) -> Rule | None:
    before = len(c.problems)
    r = c.mapping(raw, path, RULE_KEYS)
    label = path + (f" ({r['name']})" if isinstance(r.get("name"), str) else "")
    match = _match(c, r.get("match", {}), f"{path}.match")
    effects = [k for k in ("latency", "error", "fault", "task", "rate_limit") if k in r]
    if isinstance(raw, dict) and not effects:
        c.fail(path, "a rule needs an effect (allowed: latency, error, fault, task, rate_limit)")
    latency = (
        check_distribution(c, r["latency"], f"{path}.latency", ms=True) if "latency" in r else None
    )
    error = check_error(c, r["error"], f"{path}.error") if "error" in r else None
    fault, fault_options = _fault(c, r["fault"], f"{path}.fault") if "fault" in r else (None, {})
    task = _task(c, r["task"], f"{path}.task") if "task" in r else None
    limit = _rate_limit(c, r["rate_limit"], f"{path}.rate_limit") if "rate_limit" in r else None
    if len(c.problems) > before:
        return None
    return Rule(label, match, latency, error, fault, fault_options, task, limit)


def _match(c: Checker, raw: Any, path: str) -> Match:
    m = c.mapping(raw, path, MATCH_KEYS)
    kw: dict[str, Any] = {}
    if "endpoint" in m:
        kw["endpoint"] = c.choice(m["endpoint"], f"{path}.endpoint", ENDPOINTS) or "any"
    for key, attr in (("model", "models"), ("size", "sizes"), ("aspect_ratio", "aspect_ratios"),
                      ("quality", "qualities"), ("key", "keys")):  # fmt: skip
        if key in m:
            values = kw[attr] = c.strings(m[key], f"{path}.{key}")
            if values is not None and key != "key":
                _known(c, key, values, f"{path}.{key}", kw.get("endpoint", "any"))
    if "route" in m:
        routes = kw["routes"] = c.strings(m["route"], f"{path}.route")
        known = frozenset(Catalogue.default().routes) | {"chat"}
        for value in sorted((routes or frozenset()) - known):
            c.warn(
                f"{path}.route",
                f"{value!r} is not a route of the API: the rule never matches (known: "
                f"{', '.join(sorted(known))})",
            )
    if "prompt_contains" in m:
        found = c.strings(m["prompt_contains"], f"{path}.prompt_contains")
        kw["prompt_contains"] = tuple(s.lower() for s in sorted(found or ()))
    if "prompt_regex" in m:
        kw["prompt_regex"] = check_regex(c, m["prompt_regex"], f"{path}.prompt_regex")
    if "header" in m:
        kw["header"] = check_header(c, m["header"], f"{path}.header")
    if "nth" in m:
        items = m["nth"] if isinstance(m["nth"], list) else [m["nth"]]
        nums = [c.number(n, f"{path}.nth", low=1, integer=True) for n in items]
        kw["nth"] = frozenset(int(n) for n in nums if n is not None)
    if "every" in m:
        every = c.number(m["every"], f"{path}.every", low=1, integer=True)
        kw["every"] = int(every) if every is not None else None
    if "probability" in m:
        kw["probability"] = c.number(m["probability"], f"{path}.probability", low=0, high=1)
    return Match(**kw)


def check_header(c: Checker, raw: Any, path: str) -> tuple[str, str | None] | None:
    """A ``header`` condition, ``{name, value}``: the name lower-cased, the value optional
    (presence is enough)."""
    h = c.mapping(raw, path, ("name", "value"))
    name = c.text(h.get("name"), f"{path}.name")
    value = h.get("value")
    if value is not None:
        c.text(value, f"{path}.value")
    return (name.lower(), value) if name else None


def _known(c: Checker, name: str, values: frozenset[str], path: str, endpoint: str) -> None:
    """Match values a request can have: model names (the chat model's too, for rules that
    chat calls meet), and the values of the catalogue's enum fields (a rule on ``size:
    "1024x1024"`` would silently never match ``1024*1024``)."""
    catalogue = Catalogue.default()
    allowed = frozenset(catalogue.names()) if name == "model" else catalogue.field_values(name)
    if name == "model" and endpoint in ("chat", "any"):
        from ..chat.usage import chat_model  # (chat's data, read on first use)

        allowed |= {chat_model().id}
    for value in sorted(values - allowed) if allowed else ():
        c.warn(
            path,
            f"{value!r} is not a {name} any model accepts: the rule matches only creates that "
            f"send it, which are otherwise answered 400 (known: {', '.join(sorted(allowed))})",
        )


def check_regex(c: Checker, raw: Any, path: str) -> Any:
    """Compiled with RE2, which matches in linear time: no scenario regex can stall the server
    however it is written (Python's re backtracks exponentially on e.g. (a|a)*b)."""
    text = c.text(raw, path)
    if text is None:
        return None
    if len(text) > MAX_REGEX:
        c.fail(path, f"regex longer than {MAX_REGEX} characters")
        return None
    try:
        return re2.compile(text, _RE2_OPTIONS)
    except re2.error as exc:
        c.fail(
            path,
            f"not a valid regular expression: {exc} (RE2 syntax: no backreferences or lookaround)",
        )
        return None


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False


DIST_KINDS = ("fixed", "uniform", "normal", "lognormal")


def check_distribution(c: Checker, raw: Any, path: str, *, ms: bool) -> Distribution | None:
    """Latency in ms (stored as seconds) or a task duration in seconds."""
    scale = 0.001 if ms else 1.0
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = c.number(raw, path)
        return Distribution("fixed", value * scale) if value is not None else None
    d = c.mapping(raw, path, DIST_KINDS)
    if len(d) != 1:
        if isinstance(raw, dict):
            c.fail(path, f"give exactly one of: {', '.join(DIST_KINDS)}")
        return None
    kind, value = next(iter(d.items()))
    if kind not in DIST_KINDS:
        return None
    sub = f"{path}.{kind}"
    if kind == "fixed":
        n = c.number(value, sub)
        return Distribution("fixed", n * scale) if n is not None else None
    if kind == "uniform":
        if not (isinstance(value, list) and len(value) == 2):
            c.fail(sub, "expected [low, high]")
            return None
        low, high = (c.number(v, sub) for v in value)
        if low is None or high is None:
            return None
        if low > high:
            c.fail(sub, f"low {low} is greater than high {high}")
            return None
        return Distribution("uniform", low * scale, high * scale)
    names = ("mean", "stddev") if kind == "normal" else ("median", "sigma")
    p = c.mapping(value, sub, names)
    a, b = (c.number(p.get(n), f"{sub}.{n}") for n in names)
    if a is None or b is None:
        return None
    return Distribution(kind, a * scale, b * scale if kind == "normal" else b)


def check_error(c: Checker, raw: Any, path: str) -> ErrorEffect | None:
    e = c.mapping(raw, path, ("status", "type", "message", "headers"))
    status = c.number(e.get("status"), f"{path}.status", low=400, high=599, integer=True)
    if status is None:
        return None
    type_ = e.get("type", error_type(int(status)))
    c.text(type_, f"{path}.type")
    message = e.get("message", _DEFAULT_MESSAGES.get(int(status), "Emulated error"))
    c.text(message, f"{path}.message")
    headers = c.mapping(e.get("headers", {}), f"{path}.headers", tuple(e.get("headers", {}) or ()))
    out: dict[str, str] = {}
    for k, v in headers.items():
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            out[str(k)] = str(v)
        else:
            c.fail(f"{path}.headers.{k}", f"expected a string or number, got {kind_of(v)}")
    if int(status) == 429 and not any(k.lower() == "retry-after" for k in out):
        out["Retry-After"] = "1"  # (the default message points to it)
    return ErrorEffect(int(status), str(type_), str(message), out)


_DEFAULT_MESSAGES = {
    429: "Rate limit exceeded. Retry after the time in the Retry-After header.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def _fault(c: Checker, raw: Any, path: str) -> tuple[str | None, dict[str, float]]:
    if isinstance(raw, str):
        return c.choice(raw, path, FAULTS), {}
    f = c.mapping(raw, path, FAULTS)
    if len(f) != 1:
        if isinstance(raw, dict):
            c.fail(path, f"give exactly one fault (allowed: {', '.join(FAULTS)})")
        return None, {}
    kind, options = next(iter(f.items()))
    if kind not in FAULTS:
        return None, {}
    if kind == "dribble":
        o = c.mapping(options, f"{path}.dribble", ("chunk_bytes", "interval_ms"))
        size = c.number(
            o.get("chunk_bytes", 16), f"{path}.dribble.chunk_bytes", low=1, integer=True
        )
        gap = c.number(o.get("interval_ms", 100), f"{path}.dribble.interval_ms", high=60_000)
        return kind, {"chunk_bytes": size or 16, "interval_ms": gap or 0.0}
    if kind == "hang":
        o = c.mapping(options or {}, f"{path}.hang", ("max_s",))
        return kind, {"max_s": c.number(o.get("max_s", 300), f"{path}.hang.max_s", high=3600) or 0}
    if options not in (None, {}, True):
        c.fail(f"{path}.{kind}", "takes no options")
    return kind, {}


TASK_KEYS = (
    "queued",
    "running",
    "outcome",
    "error",
    "forever",
    "fail_at_poll",
    "progress_steps",
    "image",
    "webhook",
)
WEBHOOK_KEYS = ("delay", "fail_attempts", "duplicate", "drop")
MAX_WEBHOOK_DELAY_S = 3600
MAX_WEBHOOK_FAILS = 100


def _task(c: Checker, raw: Any, path: str) -> TaskEffect | None:
    t = c.mapping(raw, path, TASK_KEYS)
    kw: dict[str, Any] = {}
    for key in ("queued", "running"):
        if key in t:
            kw[key] = check_distribution(c, t[key], f"{path}.{key}", ms=False)
    if "outcome" in t:
        kw["outcome"] = c.choice(t["outcome"], f"{path}.outcome", OUTCOMES) or "succeed"
    if "error" in t:
        kw["error"] = c.text(t["error"], f"{path}.error")
    if "forever" in t:
        if not isinstance(t["forever"], bool):
            c.fail(f"{path}.forever", f"expected true or false, got {kind_of(t['forever'])}")
        kw["forever"] = t["forever"] is True
    for key in ("fail_at_poll", "progress_steps"):
        if key in t:
            n = c.number(t[key], f"{path}.{key}", low=1, integer=True, high=10_000)
            kw[key] = int(n) if n is not None else None
    if "image" in t:
        kw["image"] = _image(c, t["image"], f"{path}.image")
    if "webhook" in t:
        kw["webhook"] = _webhook(c, t["webhook"], f"{path}.webhook")
    return TaskEffect(**kw)


def _webhook(c: Checker, raw: Any, path: str) -> WebhookEffect:
    w = c.mapping(raw, path, WEBHOOK_KEYS)
    kw: dict[str, Any] = {}
    if "delay" in w:
        kw["delay_s"] = c.number(w["delay"], f"{path}.delay", high=MAX_WEBHOOK_DELAY_S) or 0.0
    if "fail_attempts" in w:
        sub = f"{path}.fail_attempts"
        n = c.number(w["fail_attempts"], sub, integer=True, high=MAX_WEBHOOK_FAILS)
        kw["fail_attempts"] = int(n or 0)
    for key in ("duplicate", "drop"):
        if key in w:
            if not isinstance(w[key], bool):
                c.fail(f"{path}.{key}", f"expected true or false, got {kind_of(w[key])}")
            kw[key] = w[key] is True
    return WebhookEffect(**kw)


def _image(c: Checker, raw: Any, path: str) -> ImageEffect:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        mode = c.choice(str(raw), path, IMAGE_MODES)
        if mode == "expire":
            c.fail(path, "expire needs a time: {expire: {after_s: 30}}")
        return ImageEffect(mode or "serve")
    i = c.mapping(raw, path, ("expire",))
    e = c.mapping(i.get("expire", {}), f"{path}.expire", ("after_s",))
    after = c.number(e.get("after_s"), f"{path}.expire.after_s")
    return ImageEffect("expire", after or 0.0)


def _rate_limit(c: Checker, raw: Any, path: str) -> RateLimit | None:
    r = c.mapping(raw, path, ("capacity", "per_second"))
    cap = c.number(r.get("capacity"), f"{path}.capacity", low=1, integer=True)
    rate = c.number(r.get("per_second"), f"{path}.per_second", low=0.001)
    if cap is None or rate is None:
        return None
    return RateLimit(int(cap), float(rate))


def kind_of(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "nothing",
    }.get(type(value), type(value).__name__)  # fmt: skip
