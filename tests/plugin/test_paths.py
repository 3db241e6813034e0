"""Scenario paths a test names are found from any working directory: next to the test file,
then in the rootdir; a missing one is one clear error."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SCENARIO = "name: {name}\ndefaults:\n  task: {{queued: 0, running: 0, outcome: fail}}\n"

TESTS = """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}


def outcome(handle):
    with httpx.Client(base_url=handle.url, headers=handle.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        return c.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"]


@pytest.mark.aio_emulator(scenario="beside.yaml")
def test_beside_the_test_file(aio_emulator_respx):
    assert aio_emulator_respx.emulator.scenario.scenario.name == "beside"
    assert outcome(aio_emulator_respx) == "failed"


@pytest.mark.aio_emulator(scenario=["instant", "scenarios/in-root.yaml"])
def test_in_the_rootdir(aio_emulator_respx):
    assert aio_emulator_respx.emulator.scenario.scenario.name == "instant + in-root"


def test_use_scenario_finds_them_too(aio_emulator_respx):
    aio_emulator_respx.use_scenario("beside.yaml")
    assert outcome(aio_emulator_respx) == "failed"
"""


@pytest.mark.parametrize("cwd", [".", "tests/unit", "/"], ids=["rootdir", "test-dir", "root"])
def test_relative_scenario_paths_are_found_from_anywhere(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cwd: str
) -> None:
    root = suite.path
    unit = root / "tests" / "unit"
    unit.mkdir(parents=True)
    (unit / "beside.yaml").write_text(SCENARIO.format(name="beside"))
    (root / "scenarios").mkdir()
    (root / "scenarios" / "in-root.yaml").write_text(SCENARIO.format(name="in-root"))
    (unit / "test_paths.py").write_text(TESTS)
    monkeypatch.chdir(root / cwd)
    result = suite.runpytest(
        str(unit / "test_paths.py"), f"--rootdir={root}", f"-c={root / 'tox.ini'}"
    )
    result.assert_outcomes(passed=3)


def test_a_missing_scenario_file_is_one_clear_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import pytest


@pytest.mark.aio_emulator(scenario="scenarios/missing.yaml")
def test_it(aio_emulator_respx):
    pass


@pytest.mark.aio_emulator(scenario="bad.yaml")
def test_broken(aio_emulator_respx):
    pass
"""
    )
    (suite.path / "bad.yaml").write_text("name: bad\ndefaults:\n  task: {outcome: sucess}\n")
    result = suite.runpytest()
    result.assert_outcomes(errors=2)
    here = suite.path
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_it*",
            "aio_emulator: scenario file 'scenarios/missing.yaml' not found; looked in:",
            f"- {here}/scenarios/missing.yaml (next to the test file)",
            "*ERROR at setup of test_broken*",
            "aio_emulator: the marker's scenario cannot be used:",
            f"{here}/bad.yaml:3: defaults.task.outcome: 'sucess' is not one of: succeed, fail",
        ]
    )
    assert "emulator/plugin.py" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_the_rootdir_is_the_second_place_tried(suite: pytest.Pytester) -> None:
    sub = suite.path / "tests"
    sub.mkdir()
    (sub / "test_it.py").write_text(
        "import pytest\n\n\n@pytest.mark.aio_emulator(scenario='gone.yml')\n"
        "def test_it(aio_emulator):\n    pass\n"
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "aio_emulator: scenario file 'gone.yml' not found; looked in:",
            f"- {sub}/gone.yml (next to the test file)",
            f"- {suite.path}/gone.yml (the rootdir)",
        ]
    )
