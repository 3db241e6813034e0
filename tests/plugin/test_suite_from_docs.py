"""Done when (issue #18): a suite written from the docs alone passes 20 times in a row,
serially and under ``pytest -n 2``. The suite is ``suite_from_docs/`` (which also runs once as
part of this repository's tests) plus the first example of docs/pytest.md, repeated by an
autouse fixture with 20 params."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent
RUNS = 20
REPEAT = f"""
import pytest


@pytest.fixture(autouse=True, params=range({RUNS}), ids=lambda n: f"run{{n}}")
def _run(request):
    return request.param
"""


@pytest.fixture
def docs_suite(suite: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(HERE / "suite_from_docs" / "scenarios", suite.path / "scenarios")
    # under another name: the outer session may have imported the module by its own
    suite_file = HERE / "suite_from_docs" / "test_user_suite.py"
    (suite.path / "test_user_suite_repeated.py").write_text(suite_file.read_text("utf-8"))
    docs = (HERE.parent.parent / "docs" / "pytest.md").read_text("utf-8")
    first = re.search(r"^```python\n(.*?)^```", docs, re.S | re.M)
    assert first is not None
    (suite.path / "test_first_example.py").write_text(first.group(1))
    suite.makeconftest(REPEAT)
    return suite


def suite_size() -> int:
    text = (HERE / "suite_from_docs" / "test_user_suite.py").read_text("utf-8")
    return len(re.findall(r"^def test_", text, re.M)) + 1  # and the docs' first example


def test_the_docs_suite_passes_20_times_in_a_row(docs_suite: pytest.Pytester) -> None:
    docs_suite.runpytest("-x").assert_outcomes(passed=RUNS * suite_size())


def test_the_docs_suite_passes_20_times_under_xdist(docs_suite: pytest.Pytester) -> None:
    result = docs_suite.runpytest_subprocess("-n", "2", "-x")
    result.assert_outcomes(passed=RUNS * suite_size())
