"""Scenarios applied together: ``["rate-limited", "instant"]`` is one scenario.

They apply in order: rules are concatenated (the first scenario's rules are tried first), the
defaults (``latency``, ``task``) and the status words are merged with later scenarios winning,
``strict`` holds if any scenario asks for it, and the seed is the last one given. Each rule's
label keeps the scenario it came from (``rate-limited: rules[0] (create-limit)``), so the
journal says which scenario decided a request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TypeVar

from .model import Scenario, ScenarioError

__all__ = ["compose"]

_T = TypeVar("_T")


def compose(scenarios: Sequence[Scenario]) -> Scenario:
    """One scenario that applies ``scenarios`` in order (one scenario is returned as is)."""
    if not scenarios:
        raise ScenarioError(["a list of scenarios must name at least one"])
    if len(scenarios) == 1:
        return scenarios[0]
    words: dict[str, str] = {}
    answers: dict[str, str] = {}
    for scenario in scenarios:
        words |= scenario.status_words
        answers |= scenario.answers
    seeds = [s.seed for s in scenarios if s.seed is not None]
    return Scenario(
        name=" + ".join(s.name for s in scenarios),
        description="; ".join(s.description for s in scenarios if s.description),
        source=", ".join(s.source for s in scenarios),
        seed=seeds[-1] if seeds else None,
        strict=any(s.strict for s in scenarios),
        status_words=words,
        answers=answers,
        latency=_last(s.latency for s in scenarios),
        task=_last(s.task for s in scenarios),
        rules=tuple(
            dataclasses.replace(rule, label=f"{s.name}: {rule.label}")
            for s in scenarios
            for rule in s.rules
        ),
        warnings=tuple(w for s in scenarios for w in s.warnings),
    )


def _last(values: Iterable[_T | None]) -> _T | None:
    """The last value that is not None (None if all are)."""
    found: _T | None = None
    for value in values:
        if value is not None:
            found = value
    return found
