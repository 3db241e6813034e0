"""Scenario files: scripted latency, faults and task outcomes, loaded from YAML and validated.

A scenario is validated into frozen objects up front (:mod:`.model`), from YAML read with the
line of every key (:mod:`.source`) and checked whole (:mod:`.checks`), every problem reported
as ``file:line: path.to.key: what is wrong (allowed: ...)``. The ready scenarios ship with the
package (:mod:`.library`).
"""

from __future__ import annotations

from .checks import parse
from .library import library, load
from .model import *  # noqa: F403  (the model's public names are the package's)
from .model import __all__ as _MODEL
from .source import load_file, loads

__all__ = [*_MODEL, "library", "load", "load_file", "loads", "parse"]
