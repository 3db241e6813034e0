"""The dashboard's HTTP side: the page and its files, and the incremental feed it polls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator.dashboard import FEED_LIMIT

from .conftest import AUTH, Client, make_client


@pytest.fixture
def client() -> Iterator[Client]:
    with make_client() as c:
        c.check_schema = False  # the page and its feed are not part of the OpenAPI description
        yield c


def feed(client: Client, **params: Any) -> dict[str, Any]:
    r = client.get("/_emulator/ui/feed", params={k: v for k, v in params.items() if v is not None})
    assert r.status_code == 200, r.text
    return r.json()


def cursor(data: dict[str, Any]) -> dict[str, Any]:
    return {"since": data["seq"], "first": data["first"] or ""}


def test_the_page_and_its_files_are_served_with_a_strict_policy(client: Client) -> None:
    page = client.get("/_emulator/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    for name in ("dashboard.js", "dashboard.css", "favicon.svg"):
        assert f"/_emulator/ui/{name}" in page.text
        assert client.get(f"/_emulator/ui/{name}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert client.get("/_emulator", follow_redirects=False).headers["location"] == "/_emulator/"


@pytest.mark.parametrize("name", ["index.html", "../dashboard.py", "..%2Fmodels.json", "x.js"])
def test_only_the_listed_files_are_served(client: Client, name: str) -> None:
    assert client.get(f"/_emulator/ui/{name}").status_code == 404


def test_page_views_and_polls_are_not_journaled(client: Client) -> None:
    client.get("/_emulator/")
    feed(client)
    assert client.get("/_emulator/requests").json()["requests"] == []


def test_a_snapshot_then_only_what_changed(client: Client) -> None:
    first = feed(client)
    assert first["full"] and first["requests"] == [] and first["tasks"] == []
    task_id = client.create().json()["data"]["task_id"]

    step = feed(client, **cursor(first))
    assert not step["full"]
    assert [r["path"] for r in step["requests"]] == ["/api/v1/images/generations"]
    (task,) = step["tasks"]
    assert task["id"] == task_id and task["state"] == "queued" and not task["terminal"]

    quiet = feed(client, **cursor(step))
    assert quiet["requests"] == [] and quiet["tasks"] == []  # nothing new: nothing sent

    client.advance(60)  # the clock ends the task without any request: the page watches it
    done = feed(client, **cursor(quiet), watch=task_id)
    (task,) = done["tasks"]
    assert task["state"] == "succeeded" and task["progress"] == 100
    assert task["images"] == [f"/_emulator/ui/images/{task_id}/0.png"]
    assert task["credits_consumed"] == 4
    png = client.get(task["images"][0])
    assert png.content == client.get(f"/files/{task_id}/0.png").content  # the same image
    assert (
        client.get(task["images"][0], headers={"if-none-match": png.headers["etag"]}).status_code
        == 304
    )
    assert client.get(f"/_emulator/ui/images/{task_id}/9.png").status_code == 404
    assert client.get(f"/_emulator/ui/images/{task_id}/0.gif").status_code == 404


def test_the_page_looking_at_images_changes_nothing(client: Client) -> None:
    first_download_fails = {
        "name": "first-download-fails",
        "rules": [{"match": {"endpoint": "image", "nth": [1]}, "error": {"status": 503}}],
    }
    assert client.put("/_emulator/scenario", json={"scenario": first_download_fails}).is_success
    task_id = client.create().json()["data"]["task_id"]
    client.advance(60)
    before = client.get("/_emulator/requests").json()["requests"]
    for _ in range(5):
        assert client.get(f"/_emulator/ui/images/{task_id}/0.png").status_code == 200
    assert client.get("/_emulator/requests").json()["requests"] == before  # not journaled
    assert client.get(f"/files/{task_id}/0.png").status_code == 503  # still the 1st download


def test_a_poll_refreshes_its_task(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    start = feed(client)
    client.poll(task_id)
    (task,) = feed(client, **cursor(start))["tasks"]
    assert task["polls"] == 1


def test_refused_requests_carry_their_error_and_rule(client: Client) -> None:
    start = feed(client)
    client.create(size="1000*1000")
    client.put("/_emulator/scenario", json={"scenario": "outage"})
    client.create()
    bad, outage = feed(client, **cursor(start))["requests"]
    assert bad["status"] == 400 and "size" in bad["error"]
    assert outage["status"] == 503 and outage["rule"] and "outage" in outage["rule"]
    assert "body" not in bad  # bodies only on request: the feed stays small
    detail = client.get(f"/_emulator/ui/requests/{bad['seq']}").json()
    assert detail["body"]["size"] == "1000*1000"
    assert client.get("/_emulator/ui/requests/999").status_code == 404


def test_a_chat_calls_detail_shows_its_answer(client: Client) -> None:
    start = feed(client)
    body = {"model": "gemini", "stream": False, "messages": [{"role": "user", "content": "Hi"}]}
    answer = client.post("/api/v1/chat/completions", json=body, headers=AUTH).json()
    (row,) = feed(client, **cursor(start))["requests"]
    detail = client.get(f"/_emulator/ui/requests/{row['seq']}").json()
    assert detail["body"] == body
    assert detail["response"]["reply"] == answer["choices"][0]["message"]["content"]
    assert detail["response"]["credits_consumed"] == answer["credits_consumed"]


def test_the_key_filter(client: Client) -> None:
    client.create(key="aio_one")
    client.create(key="aio_two")
    snap = feed(client, key="aio_two")
    assert {t["key"] for t in snap["tasks"]} == {"aio_two"}
    assert {r["key"] for r in snap["requests"]} == {"aio_two"}
    client.create(key="aio_one")
    assert feed(client, key="aio_two", **cursor(snap))["requests"] == []


def test_a_reset_or_a_gap_sends_a_new_snapshot(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    seen = feed(client)
    client.post("/_emulator/reset")
    after = feed(client, **cursor(seen), watch=task_id)
    assert after["full"] and after["tasks"] == [] and after["requests"] == []

    client.create()
    step = feed(client, **cursor(after))
    assert not step["full"] and len(step["requests"]) == len(step["tasks"]) == 1
    client.post("/_emulator/reset")
    client.create()  # a reset and a new request between two polls
    step = feed(client, **cursor(step))
    assert step["full"] and len(step["requests"]) == 1
    for _ in range(FEED_LIMIT + 1):
        client.get("/api/v1/tasks/nope", headers={"Authorization": "Bearer aio_x"})
    big = feed(client, **cursor(step))
    assert big["full"] and len(big["requests"]) == FEED_LIMIT


def test_a_dropped_task_is_reported_gone(client: Client) -> None:
    start = feed(client)
    gone = feed(client, **cursor(start), watch="n48deadbeef_cv4")
    assert gone["gone"] == ["n48deadbeef_cv4"]


def test_bad_cursor_values_mean_a_snapshot(client: Client) -> None:
    assert feed(client, since="abc")["full"]


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip")])
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    from _pytest.outcomes import Failed, Skipped

    from .e2e import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Failed if outcome == "fail" else Skipped, match="apt-get install chromium"):
        browser.require()
