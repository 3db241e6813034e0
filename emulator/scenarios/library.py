"""Where scenarios come from: the ready ones shipped with the package, a file, or a dict."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from .checks import parse
from .compose import compose
from .model import Scenario, ScenarioError
from .source import load_file

__all__ = ["Spec", "library", "load"]


@functools.cache
def library() -> dict[str, Path]:
    """The ready scenarios shipped with the package, by name."""
    folder = resources.files("emulator").joinpath("data/scenarios")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith((".yaml", ".yml"))
    }


#: what names a scenario: a ready scenario's name, a YAML file's path, a dict of the same
#: structure, or a list of those (applied in order, see :func:`~.compose.compose`)
Spec = str | PathLike[str] | Mapping[str, Any] | Sequence["str | PathLike[str] | Mapping[str, Any]"]


def load(spec: Spec) -> Scenario:
    """A scenario from a library name, a file path, a dict of the same structure, or a list of
    those applied in order."""
    if isinstance(spec, Mapping):
        return parse(dict(spec), source="<dict>")
    if isinstance(spec, list | tuple):
        return compose([load(item) for item in spec])
    text = str(spec)
    ready = library()
    if text in ready:
        return load_file(ready[text], shown=f"scenarios/{ready[text].name}")
    if Path(text).suffix in (
        ".yaml",
        ".yml",
    ):  # (no other path is looked at: not even whether it exists)
        return load_file(text)
    raise ScenarioError(
        [
            f"{text[:200]}: not a ready scenario nor a .yaml file. "
            f"Ready scenarios: {', '.join(sorted(ready))}"
        ]
    )
