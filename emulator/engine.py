"""The scenario engine: decides, for one request, which rule applies and what it does.

Each rule of a scenario is compiled, when the scenario is put in use, into a
:class:`CompiledRule` that owns its predicates, its call count and its token buckets (as
respx's routes own their patterns and call statistics). A :class:`ScenarioRuntime` is one
scenario in use: its compiled rules, its seeded generator and its status words.

Rate-limit buckets refill by the emulator's clock: under a virtual clock, advancing it by a
``Retry-After`` refills exactly what that much time refills, however fast the machine runs.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import APIError
from .scenarios import Distribution, ErrorEffect, Match, RateLimit, Rule, Scenario, TaskEffect
from .tasks import State, TaskScript
from .wire import StatusWords, status_words

__all__ = ["CompiledRule", "Decision", "Request", "ScenarioRuntime", "as_api_error"]


@dataclass(frozen=True, slots=True)
class Request:
    """What rules can match on."""

    endpoint: str  # create | task | image
    key: str | None
    headers: Mapping[str, str]
    body: Mapping[str, Any] | None = None
    model: str | None = None
    #: the catalogue route the request is for (a create's path; a task's or file's model)
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the scenario does to one request."""

    rule: str | None = None
    latency_s: float = 0.0
    error: ErrorEffect | None = None
    fault: str | None = None
    fault_options: Mapping[str, float] | None = None
    task: TaskEffect | None = None


Predicate = Callable[[Request], bool]
ModelResolver = Callable[[str], "str | None"]


class CompiledRule:
    """One rule, ready to match: its predicates (the conditions of its ``match``), how many
    requests have met them, and, for a rate limit, a token bucket per API key."""

    def __init__(self, rule: Rule, resolve_model: ModelResolver) -> None:
        self.rule = rule
        self.label = rule.label
        match = rule.match
        self.endpoint = None if match.endpoint == "any" else match.endpoint
        self.predicates: tuple[Predicate, ...] = tuple(_predicates(match, resolve_model))
        self.nth = match.nth
        self.every = match.every
        self.probability = match.probability
        self.limit: RateLimit | None = rule.rate_limit
        self.calls = 0
        #: key -> (tokens, when last refilled)
        self.buckets: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        self.calls = 0
        self.buckets.clear()

    def matches(self, request: Request, rng: random.Random) -> bool:
        """Whether the rule applies. A request that meets every condition counts as a call of
        the rule (for ``nth`` and ``every``) whether or not those then let it through."""
        if self.endpoint is not None and self.endpoint != request.endpoint:
            return False
        if not all(predicate(request) for predicate in self.predicates):
            return False
        self.calls += 1
        if self.nth is not None and self.calls not in self.nth:
            return False
        if self.every is not None and self.calls % self.every != 0:
            return False
        return self.probability is None or rng.random() < self.probability

    def take_token(self, key: str, now: float) -> ErrorEffect | None:
        """Spend one token of ``key``'s bucket; the rule's error (429) when it is empty."""
        limit = self.limit
        assert limit is not None
        tokens, last = self.buckets.get(key, (float(limit.capacity), now))
        tokens = min(float(limit.capacity), tokens + max(0.0, now - last) * limit.per_second)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return None
        self.buckets[key] = (tokens, now)
        wait = math.ceil((1.0 - tokens) / limit.per_second)
        return self.rule.error or ErrorEffect(
            429,
            "rate_limit_exceeded",
            f"Rate limit exceeded: {limit.capacity} requests, refilled at {limit.per_second}/s. "
            f"Retry after {wait} s.",
            {"Retry-After": str(wait)},
        )


def _predicates(m: Match, resolve_model: ModelResolver) -> list[Predicate]:
    """One check per condition of ``m`` (beyond the endpoint and the counters)."""
    checks: list[Predicate] = []
    if m.keys is not None:
        keys = m.keys
        checks.append(lambda r: r.key in keys)
    if m.header is not None:
        name, wanted = m.header
        checks.append(lambda r: (v := r.headers.get(name)) is not None and wanted in (None, v))
    if m.routes is not None:
        routes = m.routes
        checks.append(lambda r: r.route in routes)
    if m.models is not None:
        models = m.models

        def model_matches(r: Request) -> bool:
            named = r.body.get("model") if r.body is not None else None
            model = r.model
            if model is None and isinstance(named, str):
                model = resolve_model(named) or named
            return model in models or named in models

        checks.append(model_matches)
    if m.prompt_contains:
        needles = m.prompt_contains
        checks.append(lambda r: any(n in _prompt(r).lower() for n in needles))
    if m.prompt_regex is not None:
        search = m.prompt_regex.search
        checks.append(lambda r: search(_prompt(r)[:5000]) is not None)
    for field, allowed in (("size", m.sizes), ("aspect_ratio", m.aspect_ratios),
                           ("quality", m.qualities)):  # fmt: skip
        if allowed is not None:
            checks.append(_body_field_in(field, allowed))
    if m.prompt_contains or m.prompt_regex is not None:  # a request with no prompt never matches
        checks.insert(0, lambda r: isinstance(_body(r).get("prompt"), str))
    return checks


def _body(r: Request) -> Mapping[str, Any]:
    return r.body if r.body is not None else {}


def _prompt(r: Request) -> str:
    return str(_body(r).get("prompt", ""))


def _body_field_in(name: str, allowed: frozenset[str]) -> Predicate:
    return lambda r: _body(r).get(name) in allowed


class ScenarioRuntime:
    """One scenario in use: its compiled rules with their counters and buckets, its seeded
    generator and its status words; ``reset()`` forgets the counters."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        resolve_model: ModelResolver = lambda name: name,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if scenario.seed is not None else seed
        self.clock = clock
        self.resolve_model = resolve_model
        self._loaded = scenario
        self._compiled = [CompiledRule(rule, resolve_model) for rule in scenario.rules]
        self.rules = list(self._compiled)
        #: ``data.status`` per state under this scenario
        self.words: StatusWords = status_words(scenario.status_words)
        self.plain: Decision | None = self._plain()
        self.rng = random.Random(self.seed)
        #: the scripts of task effects whose timings are both fixed: the same for every task
        #: (an ``instant`` scenario's), so each is built once, not once per create
        self._fixed_scripts: dict[TaskEffect, TaskScript] = {}

    def _plain(self) -> Decision | None:
        """The decision for every request when the scenario has no rules and no latency, so
        callers can skip building a rule request (None: call :meth:`decide`)."""
        scenario = self.scenario
        plain = not scenario.rules and scenario.latency is None
        return Decision(task=scenario.task) if plain else None

    def add_rule(self, rule: Rule) -> CompiledRule:
        """Put ``rule`` in front of the others until :meth:`reset` (a test's own rule)."""
        compiled = CompiledRule(rule, self.resolve_model)
        self.rules.insert(0, compiled)
        self.scenario = replace(self.scenario, rules=(rule, *self.scenario.rules))
        self.plain = None
        return compiled

    def reset(self) -> None:
        """Forget the counters, the buckets and the rules added since it was loaded."""
        self.rng = random.Random(self.seed)
        self.scenario = self._loaded
        self.rules = list(self._compiled)
        self.plain = self._plain()
        self._fixed_scripts.clear()
        for rule in self.rules:
            rule.reset()

    def decide(self, request: Request) -> Decision:
        """First matching rule wins; a rate limit with tokens left lets later rules decide."""
        scenario = self.scenario
        for rule in self.rules:
            if not rule.matches(request, self.rng):
                continue
            if rule.limit is not None:
                limited = rule.take_token(request.key or "", self.clock())
                if limited is None:
                    continue
                return Decision(rule=rule.label, error=limited)
            spec = rule.rule
            return Decision(
                rule=rule.label,
                latency_s=self._sample(spec.latency or scenario.latency),
                error=spec.error,
                fault=spec.fault,
                fault_options=spec.fault_options,
                task=spec.task or scenario.task,
            )
        return Decision(latency_s=self._sample(scenario.latency), task=scenario.task)

    def task_script(self, effect: TaskEffect | None, default: TaskScript) -> TaskScript:
        """The script of a new task: the effect's settings over the model's default timing."""
        if effect is None:
            return default
        script = self._fixed_scripts.get(effect)
        if script is not None:
            return script
        failed = effect.outcome == "fail" or effect.fail_at_poll is not None
        script = TaskScript(
            queued_s=self._duration(effect.queued, default.queued_s),
            running_s=self._duration(effect.running, default.running_s),
            outcome=State.FAILED if effect.outcome == "fail" else State.SUCCEEDED,
            error=effect.error if failed else None,  # None: the route's default reason
            forever=effect.forever,
            fail_at_poll=effect.fail_at_poll,
            progress_steps=effect.progress_steps,
        )
        if _fixed(effect.queued) and _fixed(effect.running):  # no draw, no default: shareable
            self._fixed_scripts[effect] = script
        return script

    def _sample(self, dist: Distribution | None) -> float:
        return dist.sample(self.rng) if dist is not None else 0.0

    def _duration(self, dist: Distribution | None, default: float) -> float:
        return round(dist.sample(self.rng), 3) if dist is not None else default


def _fixed(dist: Distribution | None) -> bool:
    return dist is not None and dist.fixed


def as_api_error(effect: ErrorEffect) -> APIError:
    return APIError(
        effect.message, status=effect.status, type=effect.type, headers=dict(effect.headers)
    )
