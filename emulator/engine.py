"""The scenario engine: decides, for one request, which rule applies and what it does.

Keeps the per-scenario run-time state: the seeded generator, how many calls each rule has
matched, and the token buckets of rate limits (which refill in real time, like latency).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import APIError
from .scenarios import Distribution, ErrorEffect, Rule, Scenario, TaskEffect
from .tasks import State, TaskScript

__all__ = ["Decision", "Request", "ScenarioRuntime"]


@dataclass(frozen=True, slots=True)
class Request:
    """What rules can match on."""

    endpoint: str  # create | task | image
    key: str | None
    headers: Mapping[str, str]
    body: Mapping[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str | None = None
    latency_s: float = 0.0
    error: ErrorEffect | None = None
    fault: str | None = None
    fault_options: Mapping[str, float] | None = None
    task: TaskEffect | None = None


class ScenarioRuntime:
    """One scenario in use, with its counters; ``reset()`` forgets them."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        resolve_model: Callable[[str], str | None] = lambda name: name,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if scenario.seed is not None else seed
        self.resolve_model = resolve_model
        self.monotonic = monotonic
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        scenario = self.scenario
        #: the decision for every request when the scenario has no rules and no latency, so
        #: the hot path can skip building a rule request (None: call :meth:`decide`)
        plain = not scenario.rules and scenario.latency is None
        self.plain: Decision | None = Decision(task=scenario.task) if plain else None
        self.counts = [0] * len(self.scenario.rules)
        self.buckets: dict[tuple[int, str], tuple[float, float]] = {}

    def decide(self, request: Request) -> Decision:
        """First matching rule wins; a rate limit with tokens left lets later rules decide."""
        scenario = self.scenario
        for index, rule in enumerate(scenario.rules):
            if not self._matches(index, rule, request):
                continue
            if rule.rate_limit is not None:
                limited = self._take_token(index, rule, request.key or "")
                if limited is None:
                    continue
                return Decision(rule=rule.label, error=limited)
            latency = rule.latency or scenario.latency
            return Decision(
                rule=rule.label,
                latency_s=self._sample(latency),
                error=rule.error,
                fault=rule.fault,
                fault_options=rule.fault_options,
                task=rule.task or scenario.task,
            )
        return Decision(latency_s=self._sample(scenario.latency), task=scenario.task)

    def task_script(self, effect: TaskEffect | None, default: TaskScript) -> TaskScript:
        """The script of a new task: the effect's settings over the model's default timing."""
        if effect is None:
            return default
        failed = effect.outcome == "fail" or effect.fail_at_poll is not None
        return TaskScript(
            queued_s=self._duration(effect.queued, default.queued_s),
            running_s=self._duration(effect.running, default.running_s),
            outcome=State.FAILED if effect.outcome == "fail" else State.SUCCEEDED,
            error=(effect.error or "Image generation failed") if failed else None,
            forever=effect.forever,
            fail_at_poll=effect.fail_at_poll,
            progress_steps=effect.progress_steps,
        )

    def status_words(self, base: Mapping[State, str]) -> Mapping[State, str]:
        words = self.scenario.status_words
        if not words:
            return base
        return {state: words.get(state.value, base[state]) for state in State}

    # -- internals ------------------------------------------------------------------------

    def _matches(self, index: int, rule: Rule, r: Request) -> bool:
        m = rule.match
        if m.endpoint != "any" and m.endpoint != r.endpoint:
            return False
        if m.keys is not None and r.key not in m.keys:
            return False
        if m.header is not None:
            value = r.headers.get(m.header[0])
            if value is None or (m.header[1] is not None and value != m.header[1]):
                return False
        if m.models is not None:
            model = r.model
            if model is None and r.body is not None and isinstance(r.body.get("model"), str):
                model = self.resolve_model(r.body["model"]) or r.body["model"]
            if model not in m.models and (r.body or {}).get("model") not in m.models:
                return False
        body = r.body or {}
        if m.prompt_contains or m.prompt_regex is not None:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return False
            if m.prompt_contains and not any(p in prompt.lower() for p in m.prompt_contains):
                return False
            if m.prompt_regex is not None and not m.prompt_regex.search(prompt[:5000]):
                return False
        for attr, field in (("sizes", "size"), ("aspect_ratios", "aspect_ratio"),
                            ("qualities", "quality")):  # fmt: skip
            allowed = getattr(m, attr)
            if allowed is not None and body.get(field) not in allowed:
                return False
        self.counts[index] += 1
        n = self.counts[index]
        if m.nth is not None and n not in m.nth:
            return False
        if m.every is not None and n % m.every != 0:
            return False
        return m.probability is None or self.rng.random() < m.probability

    def _take_token(self, index: int, rule: Rule, key: str) -> ErrorEffect | None:
        limit = rule.rate_limit
        assert limit is not None
        now = self.monotonic()
        tokens, last = self.buckets.get((index, key), (float(limit.capacity), now))
        tokens = min(float(limit.capacity), tokens + (now - last) * limit.per_second)
        if tokens >= 1.0:
            self.buckets[(index, key)] = (tokens - 1.0, now)
            return None
        self.buckets[(index, key)] = (tokens, now)
        wait = math.ceil((1.0 - tokens) / limit.per_second)
        return rule.error or ErrorEffect(
            429,
            "rate_limit_exceeded",
            f"Rate limit exceeded: {limit.capacity} requests, refilled at {limit.per_second}/s. "
            f"Retry after {wait} s.",
            {"Retry-After": str(wait)},
        )

    def _sample(self, dist: Distribution | None) -> float:
        return dist.sample(self.rng) if dist is not None else 0.0

    def _duration(self, dist: Distribution | None, default: float) -> float:
        return round(dist.sample(self.rng), 3) if dist is not None else default


def as_api_error(effect: ErrorEffect) -> APIError:
    return APIError(
        effect.message, status=effect.status, type=effect.type, headers=dict(effect.headers)
    )
