"""Where the fixtures answer: the live server on a port or a range of ports, the in-process one
for another base URL, and both in one test."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port something else listens on for the length of the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_port_a_range_and_the_ini_option(suite: pytest.Pytester, taken: int) -> None:
    port = free_port()
    suite.makepyfile(
        f"""
import httpx
import pytest


@pytest.mark.aio_emulator(port={port})
def test_port(aio_emulator):
    assert aio_emulator.url == "http://127.0.0.1:{port}"
    assert httpx.get(aio_emulator.url + "/_emulator/health").json()["status"] == "ok"


@pytest.mark.aio_emulator(ports=({taken}, {taken} + 20))
def test_range_skips_a_taken_port(aio_emulator):
    assert {taken} < int(aio_emulator.url.rsplit(":", 1)[1]) <= {taken} + 20


def test_default_is_any_free_port(aio_emulator):
    assert aio_emulator.url != "http://127.0.0.1:{port}"
"""
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_the_ini_option_sets_the_session_port(suite: pytest.Pytester) -> None:
    port = free_port()
    suite.makefile(
        ".ini", tox=f"[pytest]\naddopts = -p no:cacheprovider\naio_emulator_ports = {port}\n"
    )
    suite.makepyfile(
        f"""
def test_it(aio_emulator):
    assert aio_emulator.url == "http://127.0.0.1:{port}"
"""
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_a_taken_port_is_one_clear_error(suite: pytest.Pytester, taken: int) -> None:
    suite.makepyfile(
        f"""
import pytest


@pytest.mark.aio_emulator(port={taken})
def test_it(aio_emulator):
    pass
"""
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"aio_emulator: the live emulator cannot listen on 127.0.0.1, port {taken}: "
            "Address already in use. Another process, or another pytest-xdist worker, has it: "
            "give a range, e.g. @pytest.mark.aio_emulator(ports=(8700, 8799)), or port=0 for "
            "any free port"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_in_process_fixture_answers_for_another_base_url(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}
STAGING = "https://staging.apiin.one"


@pytest.mark.aio_emulator(base_url=STAGING)
def test_staging(aio_emulator_respx):
    assert aio_emulator_respx.url == STAGING
    with httpx.Client(base_url=STAGING, headers=aio_emulator_respx.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        task = c.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert task["output"]["image_url"] == f"{STAGING}/files/{task_id}/0.png"
        assert c.get(task["output"]["image_url"]).status_code == 200
    with pytest.raises(Exception, match="not mocked"):
        httpx.get("https://apiin.one/api/v1/tasks/x")


@pytest.mark.aio_emulator(base_url=STAGING)
def test_both_fixtures_share_one_emulator(aio_emulator, aio_emulator_respx):
    with httpx.Client(base_url=STAGING, headers=aio_emulator.headers) as c:
        task_id = c.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
    live = httpx.get(f"{aio_emulator.url}/api/v1/tasks/{task_id}", headers=aio_emulator.headers)
    assert live.json()["data"]["status"] == "completed"
    assert len(aio_emulator.requests()) == len(aio_emulator_respx.requests()) == 2
"""
    )
    suite.runpytest().assert_outcomes(passed=2)
