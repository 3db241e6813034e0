"""Scenario files: loading, validation messages with file and line, the published schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from emulator.scenarios import ScenarioError, library, load, load_file, loads, parse

SCHEMA = json.loads(resources.files("emulator").joinpath("data/scenario.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
READY = [
    "default", "instant", "slow", "flaky", "rate-limited", "outage", "failing-tasks",
    "content-policy", "broken-images", "insufficient-credits",
]  # fmt: skip


def test_the_ready_library_is_complete_and_packaged() -> None:
    assert sorted(library()) == sorted(READY)
    top_level = Path(__file__).parent.parent / "scenarios"
    assert sorted(p.stem for p in top_level.glob("*.yaml")) == sorted(READY)


@pytest.mark.parametrize("name", READY)
def test_ready_scenarios_load_and_conform_to_the_schema(name: str) -> None:
    scenario = load(name)
    assert scenario.name == name and scenario.description
    text = library()[name].read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert list(VALIDATOR.iter_errors(yaml.safe_load(text))) == []


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        loads(text, source="s.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("name: x\nrules: [\n", "s.yaml:3: not valid YAML", id="bad-yaml"),
        pytest.param("", "s.yaml:1: the file is empty", id="empty"),
        pytest.param(
            "name: x\nrulez: []\n", "s.yaml:2: rulez: unknown key (allowed: name,", id="unknown-top"
        ),
        pytest.param("description: x\n", "s.yaml:1: name: is required", id="no-name"),
        pytest.param(
            "name: x\nrules:\n  - match: {endpoint: create}\n    latency: {fixed: 5}\n    colour: red\n",
            "s.yaml:5: rules[0].colour: unknown key (allowed: name, match, latency",
            id="unknown-rule-key",
        ),
        pytest.param(
            "name: x\nrules:\n  - match:\n      nth: first\n    error: {status: 500}\n",
            "s.yaml:4: rules[0].match.nth: expected an integer, got a string",
            id="wrong-type",
        ),
        pytest.param(
            "name: x\nrules:\n  - match: {}\n",
            "s.yaml:3: rules[0]: a rule needs an effect (allowed: latency, error, fault, task",
            id="no-effect",
        ),
        pytest.param(
            "name: x\nrules:\n  - fault: explode\n",
            "s.yaml:3: rules[0].fault: 'explode' is not one of: reset, hang, close_mid_body",
            id="unknown-effect",
        ),
        pytest.param(
            "name: x\nrules:\n  - match:\n      prompt_regex: '[unclosed'\n    error: {status: 400}\n",
            "s.yaml:4: rules[0].match.prompt_regex: not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            "name: x\nrules:\n  - match:\n      prompt_regex: '(a)\\1'\n    error: {status: 400}\n",
            "s.yaml:4: rules[0].match.prompt_regex: not a valid regular expression",
            id="backreference-not-re2",
        ),
        pytest.param(
            "name: x\ndefaults:\n  task:\n    running: -5\n",
            "s.yaml:4: defaults.task.running: -5 is out of range (allowed: at least 0)",
            id="negative-duration",
        ),
        pytest.param(
            "name: x\nrules:\n  - match: {probability: 1.5}\n    fault: reset\n",
            "s.yaml:3: rules[0].match.probability: 1.5 is out of range (allowed: 0 to 1)",
            id="probability-over-1",
        ),
        pytest.param(
            "name: x\nrules:\n  - latency: {uniform: [9, 1]}\n",
            "s.yaml:3: rules[0].latency.uniform: low 9 is greater than high 1",
            id="uniform-reversed",
        ),
        pytest.param(
            "name: x\nrules:\n  - latency: {fixed: 1, uniform: [1, 2]}\n",
            "rules[0].latency: give exactly one of: fixed, uniform, normal, lognormal",
            id="two-distributions",
        ),
        pytest.param(
            "name: !!python/object/apply:os.system ['true']\n",
            "s.yaml:1: name: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
            id="python-tag",
        ),
        pytest.param(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
            "values (an alias bomb?)",
            id="alias-bomb",
        ),
        pytest.param(
            "name: x\nstatus_words: {done: OK}\n",
            "s.yaml:2: status_words.done: unknown key (allowed: queued, running, succeeded, failed)",
            id="status-words",
        ),
        pytest.param(
            "name: x\nrules:\n  - task: {image: {expire: {}}}\n",
            "rules[0].task.image.expire.after_s: expected a number, got nothing",
            id="expire-needs-time",
        ),
    ],
)
def test_each_problem_names_file_line_path_and_what_is_allowed(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems(
        "name: x\nrules:\n  - match: {endpoint: creat}\n    fault: melt\n  - error: {status: 99}\n"
    )
    assert [p.split(": ")[1] for p in found] == [
        "rules[0].match.endpoint", "rules[0].fault", "rules[1].error.status",
    ]  # fmt: skip


def test_load_by_name_path_or_dict(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nrules:\n  - error: {status: 503}\n")
    assert load(str(path)).name == "mine"
    assert load(path).rules[0].error.status == 503
    assert load({"name": "d", "rules": [{"fault": "reset"}]}).rules[0].fault == "reset"
    with pytest.raises(
        ScenarioError, match=r"not a ready scenario nor a \.yaml file\. Ready scenarios: "
    ):
        load("no-such-scenario")
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_file(tmp_path / "missing.yaml")


def test_dict_problems_are_reported_without_lines() -> None:
    with pytest.raises(ScenarioError, match=r"<dict>:1: rules\[0\].error.status"):
        parse({"name": "d", "rules": [{"error": {"status": "x"}}]})


def test_latency_is_milliseconds_and_task_time_is_seconds() -> None:
    scenario = parse({"name": "u", "defaults": {"latency": 250, "task": {"running": 45}}})
    assert scenario.latency.a == 0.25
    assert scenario.task.running.a == 45
    normal = parse({"name": "n", "defaults": {"latency": {"normal": {"mean": 100, "stddev": 10}}}})
    assert (normal.latency.a, normal.latency.b) == (0.1, 0.01)
    log = parse(
        {"name": "l", "defaults": {"latency": {"lognormal": {"median": 100, "sigma": 0.5}}}}
    )
    assert (log.latency.a, log.latency.b) == (0.1, 0.5)


def test_match_values_no_valid_request_has_are_warned_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator.cli import main

    path = tmp_path / "typo.yaml"
    path.write_text(
        "name: typo\nrules:\n  - match:\n      model: cogview4\n      size: 1024x1024\n"
        "      aspect_ratio: '16:9'\n    error: {status: 500}\n"
    )
    scenario = loads(path.read_text(), source="typo.yaml")
    assert len(scenario.warnings) == 2  # 16:9 is an aspect ratio some model accepts
    model, size = scenario.warnings
    assert model.startswith("typo.yaml:4: rules[0].match.model: 'cogview4' is not a model")
    assert "cogview-4" in model and "answered 400" in model
    assert size.startswith("typo.yaml:5: rules[0].match.size: '1024x1024' is not a size")
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 2 and f"{path}:4: rules[0].match.model" in err


def test_a_fifo_a_device_or_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import os
    import time

    from emulator.scenarios.source import MAX_FILE_BYTES

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody ever writes to it: reading it would wait for ever
    started = time.monotonic()
    with pytest.raises(ScenarioError, match="not a regular file"):
        load(str(fifo))
    assert time.monotonic() - started < 5
    with pytest.raises(ScenarioError, match=r"nor a \.yaml file"):
        load("/dev/zero")
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: huge\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(ScenarioError, match="larger than"):
        load(str(huge))


def test_a_path_that_is_not_yaml_is_not_even_looked_at(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "x"}')
    for spec in (str(secret), str(tmp_path / "missing.json")):
        with pytest.raises(ScenarioError) as refused:
            load(spec)
        assert "not a ready scenario nor a .yaml file" in str(refused.value)
        assert "password" not in str(refused.value)
