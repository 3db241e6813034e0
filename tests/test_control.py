"""The control API under /_emulator/, and credits as seen through it."""

from __future__ import annotations

from emulator.billing import DEFAULT_CREDITS
from emulator.tasks import State, TaskScript

from .conftest import KEY, Client, make_client


def account(client: Client, key: str = KEY) -> dict:
    return client.get(f"/_emulator/keys/{key}").json()


def test_health_reports_seed_clock_and_counts(client: Client) -> None:
    client.create()
    health = client.get("/_emulator/health").json()
    assert health["status"] == "ok"
    assert health["seed"] == 1
    assert health["clock"]["mode"] == "virtual"
    assert health["clock"]["now"] == "2026-01-01T00:00:00Z"
    assert health["tasks"] == 1


def test_keys_start_generous_and_can_be_set(client: Client) -> None:
    assert account(client, "aio_new") == {
        "key": "aio_new", "credits": DEFAULT_CREDITS, "reserved": 0, "spent": 0,
    }  # fmt: skip
    r = client.put("/_emulator/keys/aio_new", json={"credits": 50})
    assert r.status_code == 200 and r.json()["credits"] == 50
    assert account(client, "aio_new")["credits"] == 50


def test_setting_credits_validates_the_value(client: Client) -> None:
    for bad in (-1, "10", 1.5, None, True):
        r = client.put(f"/_emulator/keys/{KEY}", json={"credits": bad})
        assert r.status_code == 400, bad
        assert "credits" in r.json()["error"]["message"]
    assert client.get("/_emulator/keys/not_a_key").status_code == 400


def test_a_whole_number_of_credits_sent_as_a_float_is_an_integer(client: Client) -> None:
    r = client.put(f"/_emulator/keys/{KEY}", json={"credits": 50.0})  # JSON Schema's integer
    assert r.status_code == 200 and r.json()["credits"] == 50
    assert isinstance(r.json()["credits"], int)


def test_a_scenario_path_with_a_nul_byte_is_refused_not_a_crash(client: Client) -> None:
    for spec in ("a\u0000b.yaml", ["instant", "x\u0000.yml"]):
        r = client.put("/_emulator/scenario", json={"scenario": spec})
        assert r.status_code == 400, spec
        assert r.json()["error"]["message"].startswith("scenario: expected a ready scenario name")
    assert client.get("/_emulator/health").json()["server_errors"] == []


def test_credits_are_reserved_then_spent(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    assert account(client)["reserved"] == 4
    assert account(client)["credits"] == DEFAULT_CREDITS - 4
    client.run_to_end(task_id)
    assert account(client) == {
        "key": KEY, "credits": DEFAULT_CREDITS - 4, "reserved": 0, "spent": 4,
    }  # fmt: skip


def test_failed_tasks_are_refunded(client: Client) -> None:
    emulator = client.app.state.emulator
    request = emulator.validate({"model": "imagen4-ultra", "prompt": "a cat"})
    emulator.create_task(
        KEY, request, TaskScript(queued_s=1, running_s=1, outcome=State.FAILED, error="no")
    )
    assert account(client)["reserved"] == 12
    client.advance(5)
    assert account(client) == {"key": KEY, "credits": DEFAULT_CREDITS, "reserved": 0, "spent": 0}


def test_refunds_are_available_to_the_next_create() -> None:
    with make_client(keys={KEY: 4}) as client:
        emulator = client.app.state.emulator
        request = emulator.validate({"model": "cogview-4", "prompt": "a cat"})
        emulator.create_task(
            KEY, request, TaskScript(queued_s=0, running_s=1, outcome=State.FAILED)
        )
        assert client.create().status_code == 402
        client.advance(2)
        assert client.create().status_code == 200


def test_reset_drops_tasks_balances_journal_and_rewinds_clock_and_seed(client: Client) -> None:
    first = client.create().json()["data"]["task_id"]
    client.put(f"/_emulator/keys/{KEY}", json={"credits": 5})
    client.advance(100)
    assert client.post("/_emulator/reset").status_code == 200
    assert client.poll(first).status_code == 404
    assert account(client)["credits"] == DEFAULT_CREDITS
    assert client.get("/_emulator/clock").json()["now"] == "2026-01-01T00:00:00Z"
    journal = client.get("/_emulator/requests").json()["requests"]
    assert [e["path"] for e in journal] == [f"/api/v1/tasks/{first}"]
    client.post("/_emulator/reset")
    assert client.create().json()["data"]["task_id"] == first  # same seed, same ids


def test_journal_records_requests_newest_last_filterable_by_key(client: Client) -> None:
    client.create()
    client.create(key="aio_other", prompt="another one")
    client.post("/api/v1/images/generations", json=[], headers={"Authorization": f"Bearer {KEY}"})
    client.get("/_emulator/health")  # control calls are not journaled
    entries = client.get("/_emulator/requests").json()["requests"]
    assert [e["status"] for e in entries] == [200, 200, 400]
    assert entries[0]["method"] == "POST" and entries[0]["path"] == "/api/v1/images/generations"
    assert entries[0]["body"]["prompt"] == "a red fox in the snow"
    assert entries[0]["time"] == "2026-01-01T00:00:00Z"
    assert entries[2]["error"].startswith("The request body must be a JSON object")
    mine = client.get("/_emulator/requests", params={"key": "aio_other"}).json()["requests"]
    assert [e["body"]["prompt"] for e in mine] == ["another one"]
    client.delete("/_emulator/requests")
    assert client.get("/_emulator/requests").json()["requests"] == []


def test_clock_advance_moves_tasks_and_rejects_bad_values(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    for bad in (-1, "5", None, float("inf")):
        body = {"seconds": bad} if bad != float("inf") else {"seconds": 1e12}
        assert client.post("/_emulator/clock/advance", json=body).status_code == 400
    r = client.post("/_emulator/clock/advance", json={"seconds": 30})
    assert r.json()["now"] == "2026-01-01T00:00:30Z"
    assert client.poll(task_id).json()["data"]["status"] == "completed"


def test_real_clock_cannot_be_advanced() -> None:
    with make_client(clock="real") as c:
        r = c.post("/_emulator/clock/advance", json={"seconds": 1})
        assert r.status_code == 409
        assert "--clock virtual" in r.json()["error"]["message"]


def test_tasks_listing_shows_state_key_and_polls(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    client.poll(task_id)
    client.create(key="aio_other")
    listed = client.get("/_emulator/tasks", params={"key": KEY}).json()["tasks"]
    assert [(t["task_id"], t["key"], t["polls"], t["state"]) for t in listed] == [
        (task_id, KEY, 1, "queued")
    ]
