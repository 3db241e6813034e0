"""The ``aio_emulator`` marker: registered with its signature, keyword-only, checked, merged."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

OPTIONS = "scenario, clock, seed, credits, keys, api_key, allow_unserved, port, ports, base_url"


def test_the_marker_is_registered_with_its_signature(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.aio_emulator(*, scenario=None, clock=None, seed=None, credits=None, "
            "keys=None, api_key=None, allow_unserved=False, port=None, ports=None, "
            "base_url=None): configure the API in One emulator for this test.*"
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        pytest.param(
            "scenarion='slow'",
            "TypeError: @pytest.mark.aio_emulator() got an unexpected keyword argument "
            f"'scenarion'; its options (keyword-only) are: {OPTIONS}",
            id="typo",
        ),
        pytest.param(
            "'slow'",
            "TypeError: @pytest.mark.aio_emulator() takes 0 positional arguments but 1 was "
            f"given; its options (keyword-only) are: {OPTIONS}",
            id="positional",
        ),
        pytest.param(
            "clock='fake'",
            "ValueError: @pytest.mark.aio_emulator: clock: 'fake' is not one of: virtual, real",
            id="clock",
        ),
        pytest.param(
            "credits=-1",
            "ValueError: @pytest.mark.aio_emulator: credits: must not be negative, got -1",
            id="credits",
        ),
        pytest.param(
            "seed='7'",
            "ValueError: @pytest.mark.aio_emulator: seed: expected an integer, got '7'",
            id="seed",
        ),
        pytest.param(
            "keys={'sk_x': 1}",
            "ValueError: @pytest.mark.aio_emulator: keys: 'sk_x' is not an API key "
            "(keys start with 'aio_')",
            id="keys",
        ),
        pytest.param(
            "api_key='sk_x'",
            "ValueError: @pytest.mark.aio_emulator: api_key: 'sk_x' does not start with 'aio_'",
            id="api-key",
        ),
        pytest.param(
            "allow_unserved='yes'",
            "ValueError: @pytest.mark.aio_emulator: allow_unserved: expected True or False, "
            "got 'yes'",
            id="allow-unserved",
        ),
        pytest.param(
            "port=70000",
            "ValueError: @pytest.mark.aio_emulator: port: expected a port number from 0 (any "
            "free one) to 65535, got 70000",
            id="port",
        ),
        pytest.param(
            "ports=(8799, 8700)",
            "ValueError: @pytest.mark.aio_emulator: ports: expected (low, high) with 1 <= low "
            "<= high <= 65535, got (8799, 8700)",
            id="ports",
        ),
        pytest.param(
            "port=8765, ports=(8700, 8799)",
            "ValueError: @pytest.mark.aio_emulator: port and ports: give one of them, not both",
            id="port-and-ports",
        ),
        pytest.param(
            "base_url='staging.apiin.one'",
            "ValueError: @pytest.mark.aio_emulator: base_url: expected a scheme and a host such "
            "as 'https://staging.apiin.one', got 'staging.apiin.one'",
            id="base-url",
        ),
    ],
)
def test_a_bad_marker_is_an_error_even_without_the_fixture(
    suite: pytest.Pytester, marker: str, message: str
) -> None:
    suite.makepyfile(
        f"""
import pytest


@pytest.mark.aio_emulator({marker})
def test_it():
    pass
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"E   {message}"])


def test_a_bad_scenario_is_an_error_naming_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import pytest


@pytest.mark.aio_emulator(scenario="sloww")
def test_it(aio_emulator):
    pass
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "aio_emulator: the marker's scenario cannot be used:",
            "sloww: not a ready scenario nor a .yaml file*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_closest_marker_wins_option_by_option(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import pytest

pytestmark = pytest.mark.aio_emulator(credits=5, seed=3)


def test_module(aio_emulator):
    assert (aio_emulator.credits(), aio_emulator.emulator.seed) == (5, 3)


@pytest.mark.aio_emulator(credits=6)
class TestClass:
    def test_class(self, aio_emulator):
        assert (aio_emulator.credits(), aio_emulator.emulator.seed) == (6, 3)

    @pytest.mark.aio_emulator(credits=7)
    def test_function(self, aio_emulator_respx):
        assert (aio_emulator_respx.credits(), aio_emulator_respx.emulator.seed) == (7, 3)

    @pytest.mark.aio_emulator(seed=None)
    def test_none_means_the_default(self, aio_emulator):
        assert (aio_emulator.credits(), aio_emulator.emulator.seed) == (6, 3)
"""
    )
    suite.runpytest().assert_outcomes(passed=4)


def test_options_reach_the_emulator(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow"}


@pytest.mark.aio_emulator(api_key="aio_mine", credits=3, keys={"aio_other": 10})
def test_keys_and_credits(aio_emulator_respx):
    assert aio_emulator_respx.api_key == "aio_mine"
    assert aio_emulator_respx.credits() == 3
    assert aio_emulator_respx.credits("aio_other") == 10
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        r = c.post("/api/v1/images/generations", json=BODY)
    assert r.status_code == 402
    assert r.json()["error"]["type"] == "insufficient_credits"


@pytest.mark.aio_emulator(clock="real", scenario="default")
def test_real_clock_and_realistic_timing(aio_emulator):
    assert aio_emulator.clock.mode == "real"
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        assert c.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] == "IN_PROGRESS"


@pytest.mark.aio_emulator(scenario={"name": "fails", "defaults": {"task": {"outcome": "fail"}}})
def test_scenario_as_a_dict(aio_emulator_respx):
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        aio_emulator_respx.settle()
        assert c.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] == "failed"


@pytest.mark.aio_emulator(scenario="outage")
def test_ready_scenario(aio_emulator_respx):
    r = httpx.post("https://apiin.one/api/v1/images/generations", json=BODY,
                   headers=aio_emulator_respx.headers)
    assert r.status_code == 503 and r.headers["retry-after"] == "30"


@pytest.mark.aio_emulator(seed=7)
def test_seed_a(aio_emulator_respx):
    test_seed_a.ids = [_create(aio_emulator_respx), _create(aio_emulator_respx)]


@pytest.mark.aio_emulator(seed=7)
def test_seed_b(aio_emulator_respx):
    assert [_create(aio_emulator_respx), _create(aio_emulator_respx)] == test_seed_a.ids


def test_default_seed_differs(aio_emulator_respx):
    assert _create(aio_emulator_respx) != test_seed_a.ids[0]


def _create(emulator):
    r = httpx.post("https://apiin.one/api/v1/images/generations", json=BODY,
                   headers=emulator.headers)
    return r.json()["data"]["task_id"]
"""
    )
    suite.runpytest().assert_outcomes(passed=7)
