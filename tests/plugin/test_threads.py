"""The live handle is safe while a request is in flight: its methods run on the server's event
loop; the in-process handle runs them where it is."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_live_handle_methods_run_on_the_server_loop_during_a_request(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
import threading

import httpx
import pytest

BODY = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}


def threads_reading(handle, monkeypatch):
    # the names of the threads that read the journal, as they do
    threads = []
    entries = handle.emulator.journal.entries
    monkeypatch.setattr(
        handle.emulator.journal, "entries",
        lambda *a, **k: threads.append(threading.current_thread().name) or entries(*a, **k),
    )
    return threads


SLOW = {"name": "slow-create", "defaults": {"latency": 300, "task": {"queued": 0, "running": 1}}}


@pytest.mark.aio_emulator(scenario=SLOW)
def test_in_flight(aio_emulator, monkeypatch):
    threads = threads_reading(aio_emulator, monkeypatch)
    answers = []
    client = threading.Thread(target=lambda: answers.append(
        httpx.post(f"{aio_emulator.url}/api/v1/images/generations", json=BODY,
                   headers=aio_emulator.headers)
    ))
    client.start()
    while not aio_emulator.account()["reserved"] and client.is_alive():
        aio_emulator.set_credits("aio_other", 5)   # while the create waits out its latency
        assert len(aio_emulator.requests()) <= 1  # journaled once answered, never half
    client.join()
    assert answers[0].status_code == 200
    assert aio_emulator.credits("aio_other") == 5
    assert aio_emulator.add_rule({"match": {"endpoint": "task"}, "error": {"status": 503}})
    aio_emulator.advance(1)
    assert aio_emulator.last_request(endpoint="create")["status"] == 200
    assert threads and all(name.startswith("aio-emulator:") for name in threads)


def test_in_process_runs_here(aio_emulator_respx, monkeypatch):
    threads = threads_reading(aio_emulator_respx, monkeypatch)
    assert aio_emulator_respx.requests() == []
    assert threads == [threading.current_thread().name]


def test_an_error_in_a_handle_method_reaches_the_test(aio_emulator):
    with pytest.raises(ValueError, match="add_rule\\\\(\\\\): rule.match: expected a mapping"):
        aio_emulator.add_rule({"match": 3, "error": {"status": 500}})
"""
    )
    suite.runpytest().assert_outcomes(passed=3)
