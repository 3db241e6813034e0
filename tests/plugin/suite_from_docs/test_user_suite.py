"""A user's suite written from docs/pytest.md alone, one test or more per item of issue #18.

It runs as part of this repository's tests, and 20 times over, serially and under
``pytest -n 2``, from ``tests/plugin/test_suite_from_docs.py``.
"""

import ssl
import threading
import time

import httpx
import pytest

API = "https://apiin.one"
BODY = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}
#: one TLS context for every client (building one costs milliseconds)
TLS = ssl.create_default_context()


# -- the code under test: a small client, as a user's app would have it -------------------------


def generate_image(api_key, prompt, *, base_url=API, sleep=time.sleep, max_polls=20):
    """Create a cogview-4 task, poll it with exponential backoff, download the PNG."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, verify=TLS) as c:
        created = c.post("/api/v1/images/generations", json={**BODY, "prompt": prompt})
        task_id = created.raise_for_status().json()["data"]["task_id"]
        delay = 1.0
        for _ in range(max_polls):
            task = c.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()["data"]
            if task["status"] == "completed":
                return c.get(task["output"]["image_url"]).raise_for_status().content
            if task["status"] == "failed":
                raise RuntimeError(f"generation failed: {task['error']}")
            sleep(delay)
            delay = min(delay * 2, 30.0)
        raise TimeoutError(f"task {task_id} still running after {max_polls} polls")


def create_many(handle, n, *, sleep):
    """Create ``n`` tasks, sleeping 0.1 s between them; the answers' status codes."""
    with httpx.Client(base_url=handle.url, headers=handle.headers, verify=TLS) as client:
        codes = []
        for _ in range(n):
            codes.append(client.post("/api/v1/images/generations", json=BODY))
            sleep(0.1)
        return codes


# -- 9: installing, and the first test -------------------------------------------------------


def test_creates_a_task(aio_emulator_respx):
    body = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}
    created = httpx.post(
        f"{API}/api/v1/images/generations", json=body, headers=aio_emulator_respx.headers
    )
    assert created.json()["data"]["status"] == "IN_PROGRESS"


# -- 1: the virtual clock decides ----------------------------------------------------------------


@pytest.mark.aio_emulator(scenario=["rate-limited", "instant"])
def test_five_creates_then_429_then_retry_after(aio_emulator):
    answers = create_many(aio_emulator, 6, sleep=aio_emulator.advance)
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    aio_emulator.advance(float(answers[-1].headers["Retry-After"]))
    assert [a.status_code for a in create_many(aio_emulator, 1, sleep=aio_emulator.advance)] == [
        200
    ]


# -- 2: scenarios compose -------------------------------------------------------------------------


@pytest.mark.aio_emulator(scenario=["rate-limited", "default"])
def test_rate_limits_with_realistic_timing(aio_emulator_respx):
    png = generate_image(aio_emulator_respx.api_key, "a fox", sleep=aio_emulator_respx.advance)
    assert png.startswith(b"\x89PNG")
    assert aio_emulator_respx.polls(aio_emulator_respx.tasks()[0]["task_id"]) > 1


def test_use_scenario_takes_a_list(aio_emulator_respx):
    aio_emulator_respx.use_scenario(["default", "failing-tasks"])
    with pytest.raises(RuntimeError, match="upstream provider error"):
        generate_image(aio_emulator_respx.api_key, "a fox", sleep=aio_emulator_respx.advance)


# -- 3: rules in one line ------------------------------------------------------------------------


def test_add_rule(aio_emulator_respx):
    aio_emulator_respx.add_rule(
        {"match": {"endpoint": "create", "nth": 1}, "error": {"status": 502}}
    )
    with pytest.raises(httpx.HTTPStatusError):
        generate_image(aio_emulator_respx.api_key, "a fox")
    assert generate_image(aio_emulator_respx.api_key, "a fox").startswith(b"\x89PNG")
    assert [r["status"] for r in aio_emulator_respx.requests(endpoint="create")] == [502, 200]


def test_helpers(aio_emulator_respx):
    aio_emulator_respx.fail_next_task(reason="NSFW content detected")
    with pytest.raises(RuntimeError, match="NSFW content detected"):
        generate_image(aio_emulator_respx.api_key, "a fox")
    aio_emulator_respx.rate_limit_next_poll(retry_after=2)
    with pytest.raises(httpx.HTTPStatusError, match="429"):
        generate_image(aio_emulator_respx.api_key, "a fox")
    aio_emulator_respx.fail_next_create(status=503)
    with pytest.raises(httpx.HTTPStatusError, match="503"):
        generate_image(aio_emulator_respx.api_key, "a fox")
    assert generate_image(aio_emulator_respx.api_key, "a fox").startswith(b"\x89PNG")


# -- 4: a journal you can query -----------------------------------------------------------------


@pytest.mark.aio_emulator(scenario="default")
def test_journal_queries(aio_emulator_respx):
    generate_image(aio_emulator_respx.api_key, "a red fox", sleep=aio_emulator_respx.advance)
    assert aio_emulator_respx.last_request(endpoint="create")["body"]["prompt"] == "a red fox"
    assert len(aio_emulator_respx.requests(endpoint="image", status=200)) == 1
    assert aio_emulator_respx.requests(model="cogview-4") == aio_emulator_respx.requests()
    task_id = aio_emulator_respx.last_request(endpoint="task")["task_id"]
    aio_emulator_respx.assert_polled_at_most_every(task_id, 1)
    aio_emulator_respx.assert_backed_off(task_id)


# -- 6: paths are found from anywhere --------------------------------------------------------


@pytest.mark.aio_emulator(scenario="scenarios/slow-failures.yaml")
def test_a_scenario_file_next_to_the_tests(aio_emulator_respx):
    with pytest.raises(RuntimeError, match="upstream provider error"):
        generate_image(aio_emulator_respx.api_key, "a fox", sleep=aio_emulator_respx.advance)
    assert aio_emulator_respx.now() - 1767225600.0 >= 5


# -- 7: the live handle while a request is in flight -------------------------------------------


@pytest.mark.aio_emulator(scenario=["instant", {"name": "slow", "defaults": {"latency": 10}}])
def test_the_live_handle_during_a_request(aio_emulator):
    done = []
    worker = threading.Thread(
        target=lambda: done.append(
            generate_image(aio_emulator.api_key, "a fox", base_url=aio_emulator.url)
        )
    )
    worker.start()
    while worker.is_alive():
        aio_emulator.credits()
        aio_emulator.requests(endpoint="create")
    worker.join()
    assert done and done[0].startswith(b"\x89PNG")


# -- 8: ports, another base URL, both fixtures --------------------------------------------------


@pytest.mark.aio_emulator(ports=(18700, 18799))
def test_a_port_range(aio_emulator):
    assert 18700 <= int(aio_emulator.url.rsplit(":", 1)[1]) <= 18799
    assert generate_image(aio_emulator.api_key, "a fox", base_url=aio_emulator.url)


@pytest.mark.aio_emulator(base_url="https://staging.apiin.one")
def test_a_staging_host(aio_emulator_respx):
    png = generate_image(aio_emulator_respx.api_key, "a fox", base_url=aio_emulator_respx.url)
    assert png.startswith(b"\x89PNG")
    assert aio_emulator_respx.url == "https://staging.apiin.one"


def test_both_fixtures(aio_emulator, aio_emulator_respx):
    generate_image(aio_emulator_respx.api_key, "in-process")
    generate_image(aio_emulator.api_key, "live", base_url=aio_emulator.url)
    assert len(aio_emulator.requests(endpoint="create")) == 2


# -- 5: webhooks in-process --------------------------------------------------------------------


HOOK = "https://hooks.example.test/cb"


def test_webhooks_reach_a_respx_route_and_retry_on_the_emulators_clock(
    aio_emulator_respx, respx_mock
):
    route = respx_mock.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    body = {"model": "grok-imagine/text-to-image", "prompt": "a kite", "callback_url": HOOK}
    httpx.post(f"{API}/api/v1/images/generations", json=body, headers=aio_emulator_respx.headers)
    aio_emulator_respx.settle()
    assert route.call_count == 1
    aio_emulator_respx.advance(0.5)  # half the back-off: nothing more is sent
    assert route.call_count == 1
    aio_emulator_respx.advance(0.5)
    assert route.call_count == 2
    first, second = aio_emulator_respx.webhooks()
    assert (first["status"], second["status"]) == (500, 200)
    assert second["body"]["data"]["status"] == "completed"
