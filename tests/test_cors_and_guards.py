"""Browser apps on another origin may call the emulated API (CORS); no page on another origin,
and no DNS-rebinding host name, may use the control API."""

from __future__ import annotations

import pytest

from .conftest import AUTH, Client, make_client

PAGE = "http://127.0.0.1:5173"  # a front-end dev server on another origin


def test_a_preflight_is_answered_without_a_key_and_journals_nothing(client: Client) -> None:
    r = client.options(
        "/api/v1/images/generations",
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    assert r.headers["access-control-allow-headers"] == "authorization, content-type"
    assert r.headers["access-control-max-age"] == "600"
    assert client.get("/_emulator/requests").json()["requests"] == []


@pytest.mark.parametrize(
    "path", ["/api/v1/tasks/n48nope_cv4", "/files/x/0.png", "/api/v1/videos/generations"]
)
def test_preflights_of_every_api_path_are_answered(client: Client, path: str) -> None:
    client.check_schema = "videos" not in path  # (a path the emulator does not serve yet)
    r = client.options(path, headers={"Origin": PAGE, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"


def test_every_answer_to_a_browser_carries_cors_headers_errors_included(client: Client) -> None:
    browser = {**AUTH, "Origin": PAGE}
    created = client.post(
        "/api/v1/images/generations",
        json={"model": "cogview-4", "prompt": "a fox"},
        headers=browser,
    )
    assert created.status_code == 200
    task_id = created.json()["data"]["task_id"]
    client.advance(60)
    answers = [
        created,
        client.get(f"/api/v1/tasks/{task_id}", headers=browser),
        client.get(f"/files/{task_id}/0.png", headers={"Origin": PAGE}),
        client.post("/api/v1/images/generations", json={}, headers={"Origin": PAGE}),  # 401
        client.get("/api/v1/nothing-here", headers=browser),  # 404 through Starlette
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 401, 404]
    for r in answers:
        assert r.headers["access-control-allow-origin"] == "*"
        assert "Retry-After" in r.headers["access-control-expose-headers"]


def test_answers_to_clients_that_are_not_browsers_carry_no_cors_headers(client: Client) -> None:
    assert "access-control-allow-origin" not in client.create().headers


def test_cors_origin_narrows_who_may_read_the_answers() -> None:
    with make_client(cors_origins=("http://app.test",)) as c:
        allowed = c.get("/api/v1/tasks/x", headers={**AUTH, "Origin": "http://app.test"})
        assert allowed.headers["access-control-allow-origin"] == "http://app.test"
        assert allowed.headers["vary"] == "Origin"
        other = c.get("/api/v1/tasks/x", headers={**AUTH, "Origin": PAGE})
        assert "access-control-allow-origin" not in other.headers


def test_the_control_api_gets_no_cors_and_refuses_changes_from_another_origin(
    client: Client,
) -> None:
    preflight = client.options(
        "/_emulator/reset", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    task_id = client.create().json()["data"]["task_id"]
    wipe = client.post("/_emulator/reset", headers={"Origin": PAGE})
    assert wipe.status_code == 403 and wipe.json()["error"]["type"] == "permission_error"
    cross = client.post("/_emulator/reset", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert client.poll(task_id).status_code == 200  # nothing was wiped


@pytest.mark.parametrize(
    "media", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]
)
def test_a_simple_cross_site_body_cannot_change_state(client: Client, media: str) -> None:
    r = client.post("/_emulator/reset", content=b"x", headers={"Content-Type": media})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    put = client.put(
        "/_emulator/keys/aio_x", content=b'{"credits": 1}', headers={"Content-Type": media}
    )
    assert put.status_code == 415


def test_the_dashboard_page_own_origin_may_change_state(client: Client) -> None:
    r = client.post("/_emulator/reset", headers={"Origin": "http://emulator.test"})
    assert r.status_code == 200


def test_a_dns_rebinding_host_name_gets_nothing_from_the_control_api(client: Client) -> None:
    client.create(prompt="a secret prompt")
    for method, path in (("GET", "/_emulator/requests"), ("POST", "/_emulator/reset")):
        r = client.request(method, path, headers={"Host": "evil.example:8000"})
        assert r.status_code == 403
        assert "--allow-host evil.example" in r.json()["error"]["message"]
        assert "secret" not in r.text
    assert len(client.get("/_emulator/requests").json()["requests"]) == 1


@pytest.mark.parametrize(
    "host", ["localhost:8000", "127.0.0.1", "127.8.9.10:1", "[::1]:8000", "app.localhost"]
)
def test_loopback_host_names_are_answered(host: str) -> None:
    with make_client(allowed_hosts=()) as c:
        assert c.get("/_emulator/health", headers={"Host": host}).status_code == 200


def test_the_public_url_host_and_allowed_hosts_are_answered() -> None:
    with make_client(allowed_hosts=("ci-box",), public_url="https://emu.example") as c:
        assert c.get("/_emulator/health", headers={"Host": "ci-box:8000"}).status_code == 200
        assert c.get("/_emulator/health", headers={"Host": "emu.example"}).status_code == 200
        page = c.post(
            "/_emulator/reset", headers={"Host": "emu.example", "Origin": "https://emu.example"}
        )
        assert page.status_code == 200


def test_task_ids_are_unpredictable_unless_a_seed_was_asked_for() -> None:
    def ids(**config: object) -> list[str]:
        with make_client(**config) as c:
            return [c.create().json()["data"]["task_id"] for _ in range(3)]

    assert ids(seed=5) == ids(seed=5)
    assert ids(seed=None) != ids(seed=None)
