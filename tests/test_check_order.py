"""One order of checks on every emulated request (route, key, scenario, request), error types
for every injectable status, strict file names, and reads that change nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import AUTH, Client, make_client

OUTAGE = {"name": "down", "rules": [{"match": {}, "error": {"status": 503}}]}


def use(client: Client, scenario: object) -> None:
    r = client.put("/_emulator/scenario", json={"scenario": scenario})
    assert r.status_code == 200, r.text


def test_an_outage_answers_polls_of_unknown_tasks_too(client: Client) -> None:
    use(client, OUTAGE)
    r = client.poll("n48" + "0" * 16 + "_cv4")
    assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"


def test_an_outage_answers_malformed_and_invalid_bodies_but_a_bad_key_is_told_first(
    client: Client,
) -> None:
    use(client, OUTAGE)
    broken = client.post(
        "/api/v1/images/generations",
        content=b'{"model": "cogview-4",',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert broken.status_code == 503
    assert client.create(model="no-such-model").status_code == 503
    bad_key = client.post("/api/v1/images/generations", json={}, headers={"Authorization": "x"})
    assert bad_key.status_code == 401


def test_an_outage_answers_downloads_of_file_names_that_name_nothing(client: Client) -> None:
    use(client, OUTAGE)
    assert client.get("/files/whatever/nope.txt").status_code == 503


def test_a_malformed_body_meets_rules_with_no_body_to_match(client: Client) -> None:
    use(
        client,
        {"name": "p", "rules": [{"match": {"prompt_contains": "x"}, "error": {"status": 500}}]},
    )
    r = client.post(
        "/api/v1/images/generations",
        content=b"not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "Malformed JSON" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (403, "permission_error"),
        (408, "request_timeout"),
        (409, "conflict"),
        (422, "invalid_request_error"),
        (418, "invalid_request_error"),
        (502, "server_error"),
        (599, "server_error"),
    ],
)
def test_every_status_a_rule_can_inject_gets_a_fitting_error_type(
    client: Client, status: int, type_: str
) -> None:
    use(client, {"name": "e", "rules": [{"match": {}, "error": {"status": status}}]})
    r = client.create()
    assert r.status_code == status
    assert r.json()["error"] == {
        "code": status,
        "message": r.json()["error"]["message"],
        "type": type_,
    }


def test_a_scripted_429_says_when_to_retry_and_sends_retry_after(client: Client) -> None:
    use(client, {"name": "r", "rules": [{"match": {}, "error": {"status": 429}}]})
    r = client.create()
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert "Retry-After" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "name", ["00.png", "000.png", "01.png", "\u00b2.png", "\u0661.png", "0.PNG"]
)
def test_file_names_with_odd_digits_name_no_image(client: Client, name: str) -> None:
    task_id = client.create().json()["data"]["task_id"]
    client.run_to_end(task_id)
    assert client.get(f"/files/{task_id}/0.png").status_code == 200
    r = client.get(f"/files/{task_id}/{name}")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_reading_a_key_does_not_register_it_under_only_known_keys() -> None:
    with make_client(only_known_keys=True, keys={"aio_known": 10}) as c:
        assert c.get("/_emulator/keys/aio_new").status_code == 200
        assert c.create(key="aio_new").status_code == 401
        assert c.create(key="aio_known").status_code == 200


def test_a_500_points_to_a_traceback_health_really_shows(client: Client) -> None:
    emulator = client.app.state.emulator  # type: ignore[attr-defined]

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    emulator.lookup = boom
    client.check_schema = False
    with pytest.raises(RuntimeError):
        client.poll("n48" + "0" * 16 + "_cv4")
    health = client.get("/_emulator/health").json()
    assert "RuntimeError: boom" in health["server_errors"][-1]


def test_reset_reads_the_start_scenario_file_again_and_keeps_watching_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emulator.selection

    monkeypatch.setattr(emulator.selection, "RELOAD_CHECK_S", 0.0)
    path = tmp_path / "s.yaml"
    path.write_text("name: first\n")
    with make_client(scenario=str(path)) as c:
        path.write_text("name: second\n")
        assert c.post("/_emulator/reset").status_code == 200
        assert c.get("/_emulator/scenario").json()["name"] == "second"
        path.write_text("name: third, reloaded\n")
        os.utime(path, (1.0, 1.0))  # a new mtime, whatever the file system's resolution
        c.create()  # a request checks the file
        assert c.get("/_emulator/scenario").json()["name"] == "third, reloaded"


def test_a_reset_whose_start_file_broke_answers_400_and_resets_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: first\n")
    with make_client(scenario=str(path)) as c:
        c.create()
        path.write_text("name: x\nrules: [{fault: melt}]\n")
        r = c.post("/_emulator/reset")
        assert r.status_code == 400
        message = r.json()["error"]["message"]
        assert message.startswith("Nothing was reset") and "rules[0].fault" in message
        assert c.get("/_emulator/health").json()["tasks"] == 1
        assert c.get("/_emulator/scenario").json()["name"] == "first"


def test_a_store_full_of_live_tasks_answers_503_and_forgets_none_of_them() -> None:
    with make_client(max_tasks=2, keys={"aio_a": 100, "aio_b": 100}) as c:
        use(c, "default")  # realistic timing: tasks run for seconds
        first = c.create(key="aio_a").json()["data"]["task_id"]
        second = c.create(key="aio_b").json()["data"]["task_id"]
        full = c.create(key="aio_b")
        assert full.status_code == 503 and full.json()["error"]["type"] == "service_unavailable"
        assert 1 <= int(full.headers["retry-after"]) <= 60
        assert "--max-tasks" in full.json()["error"]["message"]
        assert c.poll(first, key="aio_a").status_code == 200
        assert c.poll(second, key="aio_b").status_code == 200
        assert c.get("/_emulator/keys/aio_b").json()["reserved"] == 4  # the 503 reserved nothing
        c.advance(int(full.headers["retry-after"]) + 30)
        assert c.create(key="aio_b").status_code == 200  # a finished task made room
