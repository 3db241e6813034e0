"""Scenarios composed from a list: rules concatenated, defaults and words merged, later wins."""

from __future__ import annotations

import pytest

from emulator.cli import build_parser
from emulator.config import Config
from emulator.scenarios import Distribution, ScenarioError, compose, load, parse

from .conftest import make_client


def test_rules_concatenate_in_order_and_keep_where_they_came_from() -> None:
    composed = load(["rate-limited", "outage"])
    assert composed.name == "rate-limited + outage"
    assert composed.source == "scenarios/rate-limited.yaml, scenarios/outage.yaml"
    assert [rule.label for rule in composed.rules][:2] == [
        "rate-limited: rules[0] (create-limit)",
        "rate-limited: rules[1] (poll-limit)",
    ]
    assert composed.rules[2].label.startswith("outage: rules[0]")


def test_defaults_and_status_words_merge_with_later_ones_winning() -> None:
    first = parse({
        "name": "a", "seed": 1, "strict": True,
        "status_words": {"queued": "WAITING", "running": "WORKING"},
        "defaults": {"latency": 50, "task": {"queued": 5}},
    })  # fmt: skip
    second = parse({
        "name": "b", "status_words": {"running": "BUSY"}, "defaults": {"task": {"queued": 0}},
    })  # fmt: skip
    third = parse({"name": "c", "seed": 3})
    composed = compose([first, second, third])
    assert composed.status_words == {"queued": "WAITING", "running": "BUSY"}
    assert composed.latency == Distribution("fixed", 0.05)  # only the first sets it
    assert composed.task is not None and composed.task.queued == Distribution("fixed", 0)
    assert composed.strict is True  # any
    assert composed.seed == 3  # the last given


def test_one_scenario_is_itself_and_none_is_an_error() -> None:
    instant = load("instant")
    assert compose([instant]) is instant
    assert load(["instant"]) == instant
    with pytest.raises(ScenarioError, match="a list of scenarios must name at least one"):
        load([])


def test_a_problem_in_one_of_them_names_it() -> None:
    with pytest.raises(ScenarioError, match=r"nope: not a ready scenario nor a \.yaml file"):
        load(["instant", "nope"])


# -- everywhere a scenario is named ---------------------------------------------------------


def test_the_control_api_takes_a_list() -> None:
    with make_client(scenario="default") as c:
        r = c.put("/_emulator/scenario", json={"scenario": ["rate-limited", "instant"]})
        assert r.status_code == 200
        assert r.json()["name"] == "rate-limited + instant"
        assert r.json()["rules"][0] == "rate-limited: rules[0] (create-limit)"
        task_id = c.create().json()["data"]["task_id"]
        assert c.poll(task_id).json()["data"]["status"] == "completed"  # instant's timing
        bad = c.put("/_emulator/scenario", json={"scenario": ["instant", 3]})
        assert bad.status_code == 400
        assert "or a list of those" in bad.json()["error"]["message"]


def test_the_environment_takes_a_comma_separated_list() -> None:
    config = Config.from_env({"AIO_EMULATOR_SCENARIO": "rate-limited, instant"})
    assert config.scenario == ("rate-limited", "instant")
    assert Config.from_env({"AIO_EMULATOR_SCENARIO": "slow"}).scenario == "slow"
    with make_client(scenario=config.scenario) as c:
        assert c.get("/_emulator/scenario").json()["name"] == "rate-limited + instant"


def test_the_command_line_repeats_scenario() -> None:
    args = build_parser().parse_args(["serve", "--scenario", "rate-limited", "--scenario", "slow"])
    assert args.scenario == ["rate-limited", "slow"]
