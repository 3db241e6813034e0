"""Reading scenario YAML: plain values only, the line of every key kept for messages, and a
bound on the number of values (against alias bombs). This is the only module that reads
YAML."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .checks import parse
from .model import Scenario, ScenarioError

__all__ = ["MAX_FILE_BYTES", "MAX_NODES", "load_file", "loads"]

#: most values (scalars, mappings, lists) one scenario file may hold
MAX_NODES = 20_000
#: the largest scenario file read (the ready ones are a few kilobytes)
MAX_FILE_BYTES = 256 * 1024
_STD_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
}


def load_file(path: str | Path, *, shown: str | None = None) -> Scenario:
    """A scenario from a regular file of at most :data:`MAX_FILE_BYTES` (a FIFO, a device or a
    huge file is refused before it is read: none may hang or stall the server)."""
    name = shown or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (opening a FIFO never waits)
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ScenarioError([f"{name}: not a regular file"])
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ScenarioError(
                [f"{name}: larger than {MAX_FILE_BYTES} bytes (scenarios are small)"]
            )
        text = raw.decode("utf-8")
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


def _to_python(
    node: yaml.Node, path: str, lines: dict[str, int], source: str, count: list[int]
) -> Any:
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
