"""Scenario files: scripted latency, faults and task outcomes, loaded from YAML and validated.

This is the only module that reads YAML. A scenario is validated into frozen objects up front;
every problem is reported as ``file:line: path.to.key: what is wrong (allowed: ...)``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import re2
import yaml
from yaml.constructor import SafeConstructor

from .wire import error_type

__all__ = [
    "ENDPOINTS",
    "FAULTS",
    "Distribution",
    "ErrorEffect",
    "ImageEffect",
    "Match",
    "RateLimit",
    "Rule",
    "Scenario",
    "ScenarioError",
    "TaskEffect",
    "WebhookEffect",
    "library",
    "load",
    "load_file",
    "parse",
]

ENDPOINTS = ("create", "task", "image", "any")
FAULTS = ("reset", "hang", "close_mid_body", "malformed_json", "truncated_json", "dribble")
IMAGE_MODES = ("serve", "404", "corrupt", "expire")
OUTCOMES = ("succeed", "fail")
STATUS_KEYS = ("queued", "running", "succeeded", "failed")
MAX_NODES = 20_000
MAX_REGEX = 500
_STD_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
}


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``problems`` lists each as 'file:line: path: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration: fixed a, uniform [a, b], normal (mean a, sd b), lognormal (median a, sigma b)."""

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: Any) -> float:
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "normal":
            value = rng.gauss(self.a, self.b)
        else:
            value = self.a * math.exp(rng.gauss(0.0, self.b))
        return max(0.0, value)


@dataclass(frozen=True, slots=True)
class Match:
    endpoint: str = "any"
    models: frozenset[str] | None = None
    prompt_contains: tuple[str, ...] = ()
    prompt_regex: Any = None  # an RE2 pattern
    sizes: frozenset[str] | None = None
    aspect_ratios: frozenset[str] | None = None
    qualities: frozenset[str] | None = None
    keys: frozenset[str] | None = None
    header: tuple[str, str | None] | None = None
    nth: frozenset[int] | None = None
    every: int | None = None
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorEffect:
    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImageEffect:
    mode: str = "serve"
    after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class WebhookEffect:
    """How the ``callback_url`` delivery of a task behaves (times are real seconds)."""

    delay_s: float = 0.0
    #: the first N attempts fail without sending anything (then retried with backoff)
    fail_attempts: int = 0
    #: every successful delivery is sent a second time
    duplicate: bool = False
    #: never deliver
    drop: bool = False


@dataclass(frozen=True, slots=True)
class TaskEffect:
    queued: Distribution | None = None
    running: Distribution | None = None
    outcome: str = "succeed"
    error: str | None = None
    forever: bool = False
    fail_at_poll: int | None = None
    progress_steps: int | None = None
    image: ImageEffect | None = None
    webhook: WebhookEffect | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per API key: ``capacity`` requests, refilled at ``per_second``."""

    capacity: int
    per_second: float


@dataclass(frozen=True, slots=True)
class Rule:
    label: str
    match: Match
    latency: Distribution | None = None
    error: ErrorEffect | None = None
    fault: str | None = None
    fault_options: Mapping[str, float] = field(default_factory=dict)
    task: TaskEffect | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str = ""
    source: str = "<built-in>"
    seed: int | None = None
    strict: bool = False
    status_words: Mapping[str, str] = field(default_factory=dict)
    latency: Distribution | None = None
    task: TaskEffect | None = None
    rules: tuple[Rule, ...] = ()


# -- loading --------------------------------------------------------------------------------


@functools.cache
def library() -> dict[str, Path]:
    """The ready scenarios shipped with the package, by name."""
    folder = resources.files("emulator").joinpath("data/scenarios")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith((".yaml", ".yml"))
    }


def load(spec: str | Path | Mapping[str, Any]) -> Scenario:
    """A scenario from a library name, a file path, or a dict of the same structure."""
    if isinstance(spec, Mapping):
        return parse(dict(spec), source="<dict>")
    text = str(spec)
    ready = library()
    if text in ready:
        return load_file(ready[text], shown=f"scenarios/{ready[text].name}")
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_file(path)
    raise ScenarioError(
        [f"{text}: not a ready scenario nor a file. Ready scenarios: {', '.join(sorted(ready))}"]
    )


def load_file(path: str | Path, *, shown: str | None = None) -> Scenario:
    path = Path(path)
    name = shown or str(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{name}: cannot read the file: {exc}"]) from exc
    return loads(text, source=name)


def loads(text: str, *, source: str = "<string>") -> Scenario:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}:{line}: not valid YAML: {problem}"]) from exc
    if node is None:
        raise ScenarioError([f"{source}:1: the file is empty; a scenario needs at least a name"])
    lines: dict[str, int] = {}
    data = _to_python(node, "", lines, source, [0])
    return parse(data, source=source, lines=lines)


def _to_python(node: yaml.Node, path: str, lines: dict[str, int], source: str, count: list[int]):
    """Node tree -> plain data, remembering the line of every path; bounded against alias bombs."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ScenarioError(
            [
                f"{source}:{node.start_mark.line + 1}: more than {MAX_NODES} values "
                "(an alias bomb?); scenarios are small"
            ]
        )
    lines.setdefault(path, node.start_mark.line + 1)
    if node.tag not in _STD_TAGS:
        raise ScenarioError(
            [
                f"{source}:{node.start_mark.line + 1}: {path or '(top)'}: tag {node.tag!r} is not "
                "allowed (only plain YAML values)"
            ]
        )
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node, path, {}, source, count)
            child = f"{path}.{key}" if path else str(key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, child, lines, source, count)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, f"{path}[{i}]", lines, source, count)
            for i, item in enumerate(node.value)
        ]
    return _CONSTRUCTOR.construct_object(node, deep=True)


_CONSTRUCTOR = SafeConstructor()


# -- validation -----------------------------------------------------------------------------


class _Checker:
    """Collects every problem with its line instead of stopping at the first."""

    def __init__(self, source: str, lines: Mapping[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:  # the closest enclosing key that has a line
            shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
            probe = "" if shorter == probe else shorter
            line = self.lines.get(probe)
        where = f"{self.source}:{line or 1}"
        self.problems.append(f"{where}: {path or '(top)'}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {_kind(value)}")
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
                path, f"expected {'an integer' if integer else 'a number'}, got {_kind(value)}"
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
        return value

    def text(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_kind(value)}")
            return None
        return value

    def strings(self, value: Any, path: str) -> frozenset[str] | None:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) for i in items) or not items:
            self.fail(path, "expected a string or a list of strings")
            return None
        return frozenset(items)


def parse(data: Any, *, source: str = "<dict>", lines: Mapping[str, int] | None = None) -> Scenario:
    """Validate plain data into a Scenario, or raise ScenarioError listing every problem."""
    c = _Checker(source, lines or {})
    top = c.mapping(
        data, "", ("name", "description", "seed", "strict", "status_words", "defaults", "rules")
    )
    name = c.text(top.get("name"), "name") if "name" in top else None
    if "name" not in top and isinstance(data, dict):
        c.fail("name", "is required")
    description = top.get("description", "")
    if not isinstance(description, str):
        c.fail("description", f"expected a string, got {_kind(description)}")
    seed = top.get("seed")
    if seed is not None:
        c.number(seed, "seed", integer=True, high=2**63)
    strict = top.get("strict", False)
    if not isinstance(strict, bool):
        c.fail("strict", f"expected true or false, got {_kind(strict)}")
    words: dict[str, str] = {}
    if "status_words" in top:
        raw = c.mapping(top["status_words"], "status_words", STATUS_KEYS)
        for key, value in raw.items():
            if key in STATUS_KEYS and c.text(value, f"status_words.{key}") is not None:
                words[key] = value
    defaults = c.mapping(top.get("defaults", {}), "defaults", ("latency", "task"))
    latency = (
        _distribution(c, defaults["latency"], "defaults.latency", ms=True)
        if "latency" in defaults
        else None
    )
    task = _task(c, defaults["task"], "defaults.task") if "task" in defaults else None
    rules_raw = top.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(rules_raw, list):
        c.fail("rules", f"expected a list of rules, got {_kind(rules_raw)}")
    else:
        for i, raw_rule in enumerate(rules_raw):
            rule = _rule(c, raw_rule, f"rules[{i}]")
            if rule is not None:
                rules.append(rule)
    if c.problems:
        raise ScenarioError(c.problems)
    return Scenario(
        name=str(name), description=description, source=source, seed=seed, strict=strict,
        status_words=words, latency=latency, task=task, rules=tuple(rules),
    )  # fmt: skip


RULE_KEYS = ("name", "match", "latency", "error", "fault", "task", "rate_limit")
MATCH_KEYS = (
    "endpoint", "model", "prompt_contains", "prompt_regex", "size", "aspect_ratio", "quality",
    "key", "header", "nth", "every", "probability",
)  # fmt: skip


def _rule(c: _Checker, raw: Any, path: str) -> Rule | None:
    before = len(c.problems)
    r = c.mapping(raw, path, RULE_KEYS)
    label = path + (f" ({r['name']})" if isinstance(r.get("name"), str) else "")
    match = _match(c, r.get("match", {}), f"{path}.match")
    effects = [k for k in ("latency", "error", "fault", "task", "rate_limit") if k in r]
    if isinstance(raw, dict) and not effects:
        c.fail(path, "a rule needs an effect (allowed: latency, error, fault, task, rate_limit)")
    latency = _distribution(c, r["latency"], f"{path}.latency", ms=True) if "latency" in r else None
    error = _error(c, r["error"], f"{path}.error") if "error" in r else None
    fault, fault_options = _fault(c, r["fault"], f"{path}.fault") if "fault" in r else (None, {})
    task = _task(c, r["task"], f"{path}.task") if "task" in r else None
    limit = _rate_limit(c, r["rate_limit"], f"{path}.rate_limit") if "rate_limit" in r else None
    if len(c.problems) > before:
        return None
    return Rule(label, match, latency, error, fault, fault_options, task, limit)


def _match(c: _Checker, raw: Any, path: str) -> Match:
    m = c.mapping(raw, path, MATCH_KEYS)
    kw: dict[str, Any] = {}
    if "endpoint" in m:
        kw["endpoint"] = c.choice(m["endpoint"], f"{path}.endpoint", ENDPOINTS) or "any"
    for key, attr in (("model", "models"), ("size", "sizes"), ("aspect_ratio", "aspect_ratios"),
                      ("quality", "qualities"), ("key", "keys")):  # fmt: skip
        if key in m:
            kw[attr] = c.strings(m[key], f"{path}.{key}")
    if "prompt_contains" in m:
        found = c.strings(m["prompt_contains"], f"{path}.prompt_contains")
        kw["prompt_contains"] = tuple(s.lower() for s in sorted(found or ()))
    if "prompt_regex" in m:
        kw["prompt_regex"] = _regex(c, m["prompt_regex"], f"{path}.prompt_regex")
    if "header" in m:
        h = c.mapping(m["header"], f"{path}.header", ("name", "value"))
        name = c.text(h.get("name"), f"{path}.header.name")
        value = h.get("value")
        if value is not None:
            c.text(value, f"{path}.header.value")
        kw["header"] = (name.lower(), value) if name else None
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


def _regex(c: _Checker, raw: Any, path: str) -> Any:
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


def _distribution(c: _Checker, raw: Any, path: str, *, ms: bool) -> Distribution | None:
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
    nums = [c.number(p.get(n), f"{sub}.{n}") for n in names]
    if None in nums:
        return None
    a, b = nums
    return Distribution(kind, a * scale, b * scale if kind == "normal" else b)


def _error(c: _Checker, raw: Any, path: str) -> ErrorEffect | None:
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
            c.fail(f"{path}.headers.{k}", f"expected a string or number, got {_kind(v)}")
    return ErrorEffect(int(status), str(type_), str(message), out)


_DEFAULT_MESSAGES = {
    429: "Rate limit exceeded. Retry after the time in the Retry-After header.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def _fault(c: _Checker, raw: Any, path: str) -> tuple[str | None, dict[str, float]]:
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


def _task(c: _Checker, raw: Any, path: str) -> TaskEffect | None:
    t = c.mapping(raw, path, TASK_KEYS)
    kw: dict[str, Any] = {}
    for key in ("queued", "running"):
        if key in t:
            kw[key] = _distribution(c, t[key], f"{path}.{key}", ms=False)
    if "outcome" in t:
        kw["outcome"] = c.choice(t["outcome"], f"{path}.outcome", OUTCOMES) or "succeed"
    if "error" in t:
        kw["error"] = c.text(t["error"], f"{path}.error")
    if "forever" in t:
        if not isinstance(t["forever"], bool):
            c.fail(f"{path}.forever", f"expected true or false, got {_kind(t['forever'])}")
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


def _webhook(c: _Checker, raw: Any, path: str) -> WebhookEffect:
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
                c.fail(f"{path}.{key}", f"expected true or false, got {_kind(w[key])}")
            kw[key] = w[key] is True
    return WebhookEffect(**kw)


def _image(c: _Checker, raw: Any, path: str) -> ImageEffect:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        mode = c.choice(str(raw), path, IMAGE_MODES)
        if mode == "expire":
            c.fail(path, "expire needs a time: {expire: {after_s: 30}}")
        return ImageEffect(mode or "serve")
    i = c.mapping(raw, path, ("expire",))
    e = c.mapping(i.get("expire", {}), f"{path}.expire", ("after_s",))
    after = c.number(e.get("after_s"), f"{path}.expire.after_s")
    return ImageEffect("expire", after or 0.0)


def _rate_limit(c: _Checker, raw: Any, path: str) -> RateLimit | None:
    r = c.mapping(raw, path, ("capacity", "per_second"))
    cap = c.number(r.get("capacity"), f"{path}.capacity", low=1, integer=True)
    rate = c.number(r.get("per_second"), f"{path}.per_second", low=0.001)
    if cap is None or rate is None:
        return None
    return RateLimit(int(cap), float(rate))


def _kind(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "nothing",
    }.get(type(value), type(value).__name__)  # fmt: skip
