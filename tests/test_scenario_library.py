"""Each ready scenario and each scenario effect, black-box over HTTP (virtual clock where time
matters), plus the ways of choosing a scenario."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import AUTH, KEY, Client, make_client

CREATE = "/api/v1/images/generations"


def statuses(client: Client, n: int, **body) -> list[int]:
    return [client.create(**body).status_code for _ in range(n)]


def test_instant_tasks_complete_on_the_first_poll() -> None:
    with make_client(scenario="instant") as c:
        task_id = c.create().json()["data"]["task_id"]
        data = c.poll(task_id).json()["data"]
        assert data["status"] == "completed" and data["progress"] == 100


def test_slow_adds_real_latency_and_long_tasks() -> None:
    with make_client(scenario="slow") as c:
        started = time.perf_counter()
        task_id = c.create().json()["data"]["task_id"]
        assert time.perf_counter() - started >= 0.2

        def state() -> str:  # the control API is not slowed down
            return c.get("/_emulator/tasks").json()["tasks"][0]["state"]

        c.advance(39)
        assert state() in ("queued", "running")
        c.advance(52)
        assert state() == "succeeded"
        assert c.app.state.emulator.tasks.get(task_id).script.duration_s >= 40


def test_outage_answers_503_everywhere_with_retry_after() -> None:
    with make_client(scenario="outage") as c:
        r = c.create()
        assert r.status_code == 503
        assert r.json()["error"] == {
            "code": 503, "message": "Service temporarily unavailable", "type": "service_unavailable",
        }  # fmt: skip
        assert r.headers["retry-after"] == "30"
        assert c.poll("n48abc_cv4").status_code in (404, 503)
        assert c.get(f"/_emulator/keys/{KEY}").json()["reserved"] == 0


def test_failing_tasks_fail_after_running_and_refund() -> None:
    with make_client(scenario="failing-tasks") as c:
        task_id = c.create().json()["data"]["task_id"]
        c.advance(30)
        assert c.poll(task_id).json()["data"]["status"] == "IN_PROGRESS"
        c.advance(20)
        data = c.poll(task_id).json()["data"]
        assert data["status"] == "failed"
        assert data["error"] == "Generation failed: upstream provider error"
        assert data["output"] is None and data["credits_consumed"] == 0
        account = c.get(f"/_emulator/keys/{KEY}").json()
        assert account["reserved"] == 0 and account["spent"] == 0


def test_content_policy_fails_matching_prompts_only() -> None:
    with make_client(scenario="content-policy") as c:
        bad = c.create(prompt="a knight holding a WEAPON").json()["data"]["task_id"]
        good = c.create(prompt="a knight holding a flower").json()["data"]["task_id"]
        c.advance(30)
        refused = c.poll(bad).json()["data"]
        assert refused["status"] == "failed" and "safety system" in refused["error"]
        assert c.poll(good).json()["data"]["status"] == "completed"
        journal = c.get("/_emulator/requests", params={"path": CREATE}).json()["requests"]
        assert [e["rule"] for e in journal] == ["rules[0] (moderation)", None]


def test_broken_images_404_or_expire() -> None:
    with make_client(scenario="broken-images") as c:
        ids = [c.create().json()["data"]["task_id"] for _ in range(3)]
        c.advance(20)
        urls = [c.poll(t).json()["data"]["output"]["image_url"] for t in ids]
        assert [c.get(u).status_code for u in urls] == [200, 200, 404]
        c.advance(30)
        assert [c.get(u).status_code for u in urls] == [404, 404, 404]
        assert "expired" in c.get(urls[0]).json()["error"]["message"]


def test_insufficient_credits_refuses_every_create() -> None:
    with make_client(scenario="insufficient-credits") as c:
        r = c.create()
        assert r.status_code == 402 and r.json()["error"]["type"] == "insufficient_credits"


def test_rate_limited_gives_consistent_429s_with_retry_after() -> None:
    with make_client(scenario="rate-limited") as c:
        results = statuses(c, 7)
        assert results == [200] * 5 + [429, 429]
        r = c.create()
        assert r.json()["error"]["type"] == "rate_limit_exceeded"
        assert int(r.headers["retry-after"]) >= 1
        assert c.create(key="aio_other").status_code == 200


def test_corrupt_images_are_not_valid_pngs() -> None:
    scenario = {"name": "c", "defaults": {"task": {"image": "corrupt"}}}
    with make_client(scenario="instant") as c:
        c.put("/_emulator/scenario", json={"scenario": scenario})
        task_id = c.create().json()["data"]["task_id"]
        c.advance(20)
        body = c.get(c.poll(task_id).json()["data"]["output"]["image_url"]).content
        from PIL import Image, UnidentifiedImageError

        with pytest.raises((OSError, SyntaxError, UnidentifiedImageError)):
            import io

            Image.open(io.BytesIO(body)).load()


def test_task_scripts_forever_fail_at_poll_progress_steps() -> None:
    with make_client() as c:
        c.put("/_emulator/scenario", json={"scenario": {"name": "s", "rules": [
            {"match": {"prompt_contains": "forever"}, "task": {"forever": True}},
            {"match": {"prompt_contains": "third"}, "task": {"fail_at_poll": 3, "running": 100}},
            {"match": {}, "task": {"queued": 0, "running": 10, "progress_steps": 2}},
        ]}})  # fmt: skip
        forever = c.create(prompt="forever and ever").json()["data"]["task_id"]
        third = c.create(prompt="fails on the third poll").json()["data"]["task_id"]
        stepped = c.create(prompt="two steps").json()["data"]["task_id"]
        c.advance(4)
        assert c.poll(stepped).json()["data"]["progress"] == 1
        c.advance(2)
        assert c.poll(stepped).json()["data"]["progress"] == 50
        assert [c.poll(third).json()["data"]["status"] for _ in range(3)] == [
            "IN_PROGRESS", "IN_PROGRESS", "failed",
        ]  # fmt: skip
        c.advance(10**6)
        data = c.poll(forever).json()["data"]
        assert data["status"] == "IN_PROGRESS" and data["progress"] == 99


def test_status_words_on_the_wire_can_be_changed() -> None:
    words = {"name": "w", "status_words": {"running": "PROCESSING", "succeeded": "COMPLETED"}}
    with make_client() as c:
        c.put("/_emulator/scenario", json={"scenario": words})
        r = c.create()
        assert r.json()["data"]["status"] == "IN_PROGRESS"  # queued keeps its default word
        task_id = r.json()["data"]["task_id"]
        c.advance(2.9)
        assert c.poll(task_id).json()["data"]["status"] in ("IN_PROGRESS", "PROCESSING")
        c.advance(60)
        assert c.poll(task_id).json()["data"]["status"] == "COMPLETED"


def test_strict_mode_rejects_unknown_fields() -> None:
    with make_client() as c:
        assert c.create(colour="red").status_code == 200
        c.put("/_emulator/scenario", json={"scenario": {"name": "strict", "strict": True}})
        r = c.create(colour="red")
        assert r.status_code == 400
        assert "colour: unknown field" in r.json()["error"]["message"]


def test_scenario_per_request_header_per_key_and_precedence() -> None:
    with make_client(key_scenarios={"aio_broken": "outage"}) as c:
        assert c.create().status_code == 200
        assert c.create(key="aio_broken").status_code == 503
        headers = {**AUTH, "X-Emulator-Scenario": "insufficient-credits"}
        r = c.post(CREATE, json={"model": "cogview-4", "prompt": "a cat"}, headers=headers)
        assert r.status_code == 402
        headers = {"Authorization": "Bearer aio_broken", "X-Emulator-Scenario": "default"}
        r = c.post(CREATE, json={"model": "cogview-4", "prompt": "a cat"}, headers=headers)
        assert r.status_code == 200  # the header wins over the key's scenario
        bad = {**AUTH, "X-Emulator-Scenario": "nope"}
        r = c.post(CREATE, json={"model": "cogview-4", "prompt": "a cat"}, headers=bad)
        assert r.status_code == 400 and "X-Emulator-Scenario" in r.json()["error"]["message"]


def test_control_api_gets_and_switches_the_scenario() -> None:
    with make_client() as c:
        assert c.get("/_emulator/scenario").json()["name"] == "default"
        r = c.put("/_emulator/scenario", json={"scenario": "outage"})
        assert r.status_code == 200 and r.json()["rules"] == ["rules[0] (outage)"]
        assert c.create().status_code == 503
        yaml_body = (
            b"name: pasted\nrules:\n  - match: {endpoint: create}\n    error: {status: 500}\n"
        )
        r = c.put("/_emulator/scenario", content=yaml_body,
                  headers={"Content-Type": "application/yaml"})  # fmt: skip
        assert r.json()["name"] == "pasted" and c.create().status_code == 500
        bad = c.put("/_emulator/scenario", content=b"name: x\nrules: [{fault: melt}]\n",
                    headers={"Content-Type": "application/yaml"})  # fmt: skip
        assert bad.status_code == 400
        assert "<request>:2: rules[0].fault: 'melt' is not one of" in bad.json()["error"]["message"]
        assert c.get("/_emulator/scenario").json()["name"] == "pasted"  # kept
        assert c.put("/_emulator/scenario", json={"scenario": 5}).status_code == 400
        c.post("/_emulator/reset")
        assert c.get("/_emulator/scenario").json()["name"] == "default"


def test_rules_match_request_headers_on_every_endpoint() -> None:
    rules = (
        b"name: by-header\nrules:\n"
        b"  - match: {header: {name: X-Test, value: 'yes'}}\n    error: {status: 503}\n"
    )
    with make_client() as c:
        c.put("/_emulator/scenario", content=rules, headers={"Content-Type": "application/yaml"})
        task_id = c.create().json()["data"]["task_id"]
        flagged = {**AUTH, "X-Test": "yes"}
        r = c.post(CREATE, json={"model": "cogview-4", "prompt": "a fox"}, headers=flagged)
        assert r.status_code == 503
        assert c.get(f"/api/v1/tasks/{task_id}", headers=flagged).status_code == 503
        assert (
            c.get(f"/api/v1/tasks/{task_id}", headers={**AUTH, "X-Test": "no"}).status_code == 200
        )
        c.advance(60)
        assert c.get(f"/files/{task_id}/0.png", headers={"X-Test": "yes"}).status_code == 503
        assert c.get(f"/files/{task_id}/0.png").status_code == 200


def test_scenario_file_is_hot_reloaded_and_a_broken_edit_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: one\nrules:\n  - match: {endpoint: create}\n    error: {status: 500}\n")
    with make_client(scenario=str(path)) as c:
        assert c.create().status_code == 500
        time.sleep(0.6)
        path.write_text(
            "name: two\nrules:\n  - match: {endpoint: create}\n    error: {status: 503}\n"
        )
        assert c.create().status_code == 500  # just written: maybe half of it, not read yet
        time.sleep(0.6)
        assert c.create().status_code == 503
        assert c.get("/_emulator/scenario").json()["name"] == "two"
        time.sleep(0.6)
        path.write_text("name: three\nrules: [{fault: melt}]\n")
        time.sleep(0.6)
        assert c.create().status_code == 503  # still "two"
        state = c.get("/_emulator/scenario").json()
        assert state["name"] == "two"
        assert "mine.yaml:2: rules[0].fault" in state["reload_error"]


def test_seeded_probability_gives_the_same_outcomes_on_every_run() -> None:
    from emulator.faults import NetworkFault

    def run(seed: int) -> list[int | str]:
        outcomes: list[int | str] = []
        with make_client(scenario="flaky", seed=seed) as c:
            for _ in range(80):
                try:
                    outcomes.append(c.create().status_code)
                except NetworkFault:  # in-process, a reset raises instead of cutting a socket
                    outcomes.append("reset")
        return outcomes

    first = run(3)
    assert first == run(3)
    assert first == run(4)  # flaky.yaml pins its own seed
    assert {200, 500, 503, "reset"} == set(first)
