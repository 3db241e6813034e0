"""After-test checks: server exceptions and unserved requests fail the test, with an opt-out."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HEADER = """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox in the snow"}
"""

UNSERVED = [
    "*aio_emulator: the emulator could not serve 3 request(s):",
    "- GET /api/v1/task/abc?x=1 -> 404: Unknown path GET '/api/v1/task/abc'. The emulator "
    "serves the API under /api/v1/ (audio/music, audio/speech, images/generations, "
    "images/tools, videos/generations, tasks/{task_id}, chat/completions: every route is in "
    "/openapi.json), files under /files/ and its control API under /_emulator/.",
    "- GET /api/v1/tasks/abc -> 401: Invalid API key: keys start with 'aio_'",
    "- DELETE /api/v1/images/generations -> 405: Method DELETE is not allowed on "
    "'/api/v1/images/generations'. Allowed: POST",
    "If this is on purpose, mark the test @pytest.mark.aio_emulator(allow_unserved=True).",
]

MISTAKES = """
def mistakes(client):
    assert client.get("/api/v1/task/abc?x=1").status_code == 404
    bad_key = {"Authorization": "Bearer sk_1"}
    assert client.get("/api/v1/tasks/abc", headers=bad_key).status_code == 401
    assert client.delete("/api/v1/images/generations").status_code == 405
"""


def mistakes_test(mode: str, then: str = "") -> str:
    """A test file whose one test makes the three MISTAKES through ``mode``'s fixture, then
    runs ``then`` (indented lines of its body)."""
    return (
        HEADER
        + MISTAKES
        + f"""
def test_it({mode}):
    with httpx.Client(base_url={mode}.url, headers={mode}.headers) as client:
        mistakes(client)
"""
        + then
    )


@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_unserved_requests_fail_the_test_as_a_list(suite: pytest.Pytester, mode: str) -> None:
    suite.makepyfile(mistakes_test(mode))
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(UNSERVED)


def test_allow_unserved_is_the_opt_out(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + MISTAKES
        + """
@pytest.mark.aio_emulator(allow_unserved=True)
def test_it(aio_emulator):
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        mistakes(client)
    assert len(aio_emulator.unserved()) == 3
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_answers_the_real_api_would_give_are_not_unserved(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
GONE = {"name": "gone", "rules": [{"name": "gone", "match": {"endpoint": "task"},
        "error": {"status": 404, "message": "Task not found"}}]}


def test_served(aio_emulator_respx):
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        assert c.get("/api/v1/tasks/n48nope_cv4").status_code == 404  # unknown task
        assert c.post("/api/v1/images/generations", json={}).status_code == 400
        assert c.get("/files/n48nope_cv4/0.png").status_code == 404
    assert aio_emulator_respx.unserved() == []


@pytest.mark.aio_emulator(scenario=GONE)
def test_scenario_rule(aio_emulator_respx):
    with httpx.Client(base_url="https://apiin.one", headers=aio_emulator_respx.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        assert c.get(f"/api/v1/tasks/{task_id}").status_code == 404
    assert "gone" in aio_emulator_respx.requests()[-1]["rule"]
"""
    )
    suite.runpytest().assert_outcomes(passed=2)


BOOM = """
def boom(*args, **kwargs):
    raise RuntimeError("boom inside the emulator")


def poll_with_a_bug(emulator, monkeypatch):
    monkeypatch.setattr(emulator.emulator, "authenticate", boom)  # a bug in the emulator
    with httpx.Client(base_url=emulator.url, headers=emulator.headers) as client:
        response = client.get("/api/v1/tasks/n48c0e1d2b3a4f5e6d7_cv4")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
"""

SERVER_ERROR = [
    "*aio_emulator: the emulator raised 1 exception(s) while serving this test (the client "
    "got a 500). This is a bug in the emulator; its traceback:",
    "",
    "Traceback (most recent call last):",
    "*in get_task*",
    "*in boom*",
    "*RuntimeError: boom inside the emulator",
]


@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_an_exception_in_the_server_fails_the_test_with_its_traceback(
    suite: pytest.Pytester, mode: str
) -> None:
    suite.makepyfile(
        HEADER
        + BOOM
        + f"""
def test_it({mode}, monkeypatch):
    poll_with_a_bug({mode}, monkeypatch)
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(SERVER_ERROR)


def test_a_failing_test_shows_the_server_traceback_beside_its_own(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        HEADER
        + BOOM
        + """
def test_it(aio_emulator_respx, monkeypatch):
    poll_with_a_bug(aio_emulator_respx, monkeypatch)
    assert False, "the client gave up"
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E *AssertionError: the client gave up", "*- Captured aio_emulator call -*", *SERVER_ERROR]
    )


def test_problems_after_the_test_body_error_at_teardown(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        HEADER
        + """
@pytest.fixture
def client(aio_emulator):
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        yield client
        client.get("/api/v1/oops")  # a clean-up call to a path that does not exist


def test_it(client):
    assert client.post("/api/v1/images/generations", json=BODY).status_code == 200
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_it*",
            "*aio_emulator: the emulator could not serve 1 request(s):",
            "- GET /api/v1/oops -> 404: Unknown path GET '/api/v1/oops'.*",
        ]
    )


@pytest.mark.parametrize("mode", ["aio_emulator", "aio_emulator_respx"])
def test_problems_reports_each_problem_once_and_then_the_test_passes(
    suite: pytest.Pytester, mode: str
) -> None:
    """``handle.problems()`` is the after-test check itself: what it returned is not reported
    again, so a test that looked at its unserved requests (and meant them) passes."""
    then = f"""
    [problem] = {mode}.problems()
    assert "could not serve 3 request(s)" in problem
    assert {mode}.problems() == []
    assert {mode}.hints() == []
"""
    suite.makepyfile(mistakes_test(mode, then))
    suite.runpytest().assert_outcomes(passed=1)
