"""What a scenario is, once validated: frozen objects the engine compiles and applies."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..chat.rules import ChatScenario

__all__ = [
    "ENDPOINTS",
    "FAULTS",
    "IMAGE_MODES",
    "OUTCOMES",
    "STATUS_KEYS",
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
]

ENDPOINTS = ("create", "task", "image", "chat", "any")
FAULTS = ("reset", "hang", "close_mid_body", "malformed_json", "truncated_json", "dribble")
IMAGE_MODES = ("serve", "404", "corrupt", "expire")
OUTCOMES = ("succeed", "fail")
STATUS_KEYS = ("queued", "running", "succeeded", "failed")


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

    @property
    def fixed(self) -> bool:
        """Whether every sample is the same value (and draws nothing from the generator)."""
        return self.kind == "fixed"

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
    #: catalogue route names (``images``, ``videos``, ``speech``, ...; ``chat``)
    routes: frozenset[str] | None = None
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
    #: how a create route answers, where the docs show another form ([choice] defaults:
    #: ``task``): route name -> ``task`` | ``finished`` | ``audio`` | ``bare``
    answers: Mapping[str, str] = field(default_factory=dict)
    latency: Distribution | None = None
    task: TaskEffect | None = None
    rules: tuple[Rule, ...] = ()
    #: ``file:line: path: message`` of what loads but is likely a mistake
    warnings: tuple[str, ...] = ()
    #: the ``chat:`` section, compiled by emulator/chat/rules.py (None: chat's defaults)
    chat: ChatScenario | None = None
