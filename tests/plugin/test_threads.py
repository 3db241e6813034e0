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


def test_in_process_a_sync_client_s_file_renders_on_its_thread_an_async_one_s_off_its_loop(
    suite: pytest.Pytester,
) -> None:
    """A sync client waits for its one answer: its file renders right there, with no hand-off
    to a worker. An async client's loop may serve other requests meanwhile: its file renders
    on a render thread, as the live server's does. The bytes are the same either way."""
    suite.makepyfile(
        """
import threading

import httpx
import pytest

import emulator.media

API = "https://apiin.one"
BODY = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}
FILES = {}


@pytest.fixture
def rendering_threads(monkeypatch):
    threads = []
    render = emulator.media.render_file
    monkeypatch.setattr(
        emulator.media, "render_file",
        lambda *a: threads.append(threading.current_thread().name) or render(*a),
    )
    return threads


def test_sync(aio_emulator_respx, rendering_threads):
    with httpx.Client(base_url=API, headers=aio_emulator_respx.headers) as client:
        task_id = client.post("/api/v1/images/generations", json=BODY).json()["data"]["task_id"]
        url = client.get(f"/api/v1/tasks/{task_id}").json()["data"]["output"]["image_url"]
        aio_emulator_respx.emulator.media.clear()  # (a render, not the cache's copy)
        FILES["sync"] = client.get(url).content
    assert rendering_threads == [threading.current_thread().name]


@pytest.mark.anyio
async def test_async(aio_emulator_respx, rendering_threads):
    async with httpx.AsyncClient(base_url=API, headers=aio_emulator_respx.headers) as client:
        created = await client.post("/api/v1/images/generations", json=BODY)
        task_id = created.json()["data"]["task_id"]
        task = (await client.get(f"/api/v1/tasks/{task_id}")).json()["data"]
        aio_emulator_respx.emulator.media.clear()
        FILES["async"] = (await client.get(task["output"]["image_url"])).content
    assert len(rendering_threads) == 1
    assert rendering_threads[0].startswith("aio-render")
    assert FILES["async"] == FILES["sync"] and FILES["sync"].startswith(b"\\x89PNG")
"""
    )
    suite.runpytest().assert_outcomes(passed=2)
