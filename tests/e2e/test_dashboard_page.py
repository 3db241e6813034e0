"""The dashboard in a real headless Chromium: live tasks and requests, controls, escaping."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests (fails them under CI), saying why
    expect = None

KEY = "aio_e2e"
AUTH = {"Authorization": f"Bearer {KEY}"}


def create(api: httpx.Client, key: str = KEY, **body: Any) -> httpx.Response:
    body.setdefault("model", "cogview-4")
    body.setdefault("prompt", "a lighthouse at dusk")
    return api.post(
        "/api/v1/images/generations", json=body, headers={"Authorization": f"Bearer {key}"}
    )


def task_row(page: Any, task_id: str) -> Any:
    return page.locator(f'#tasks tr[data-task="{task_id}"]')


def test_tasks_appear_then_complete_with_thumbnails(page: Any, api: httpx.Client) -> None:
    ids = [create(api, prompt=f"robot number {n}").json()["data"]["task_id"] for n in range(3)]
    for task_id in ids:
        expect(task_row(page, task_id).locator(".badge")).to_have_text("IN_PROGRESS")
    rows = page.locator("#tasks tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.task)") == ids[::-1]  # newest first
    expect(task_row(page, ids[0]).locator(".prompt")).to_have_text("robot number 0")

    api.post("/_emulator/clock/advance", json={"seconds": 30}).raise_for_status()
    for task_id in ids:
        row = task_row(page, task_id)
        expect(row.locator(".badge")).to_have_text("completed")
        expect(row.locator(".credits")).to_have_text("4 / 4")
        thumbnail = row.locator("td.output img")
        expect(thumbnail).to_have_count(1)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
        assert thumbnail.evaluate("img => img.naturalWidth") == 1024
    downloads = api.get("/_emulator/requests", params={"path": f"/files/{ids[0]}/0.png"})
    assert downloads.json()["requests"] == []  # the page's thumbnails are not the app's traffic

    task_row(page, ids[0]).locator("td.output a").click()  # full size in a dialog
    full = page.locator("#detail img.full")
    expect(full).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 1024", arg=full.element_handle()
    )
    page.locator("#detail-close").click()
    expect(page.locator("#detail")).to_be_hidden()


def test_a_refused_request_shows_its_error(page: Any, api: httpx.Client) -> None:
    r = create(api, size="1000*1000")
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    row = page.locator("#requests tbody tr").first
    expect(row.locator(".badge")).to_have_text("400")
    expect(row.locator(".error")).to_have_text(message)
    row.click()
    expect(page.locator("#detail .request-body")).to_contain_text('"size": "1000*1000"')
    expect(page.locator("#detail .response-body")).to_contain_text(message)


def test_switching_to_outage_from_the_page_fails_the_next_create(
    page: Any, api: httpx.Client
) -> None:
    assert create(api).status_code == 200
    page.select_option("#scenario-select", "outage")
    page.locator("#scenario-form button").click()
    expect(page.locator("#scenario-name")).to_have_text("outage")
    assert api.get("/_emulator/scenario").json()["name"] == "outage"

    r = create(api)
    assert r.status_code == 503
    row = page.locator("#requests tbody tr").first
    expect(row.locator(".badge")).to_have_text("503")
    expect(row.locator(".error")).to_have_text(r.json()["error"]["message"])
    expect(row.locator("td").last).to_contain_text("outage")


def test_a_bad_pasted_scenario_shows_the_validate_message(page: Any, api: httpx.Client) -> None:
    page.locator("#yaml-box summary").click()
    page.fill("#scenario-yaml", "name: broken\nrules: 5\n")
    page.locator("#yaml-form button").click()
    expect(page.locator("#scenario-error")).to_contain_text(
        "rules: expected a list of rules, got an integer"  # as `aio-emulator validate` says
    )
    expect(page.locator("#scenario-name")).to_have_text("default")  # kept

    yaml = "name: always-429\nrules:\n  - match: {endpoint: create}\n    error: {status: 429}\n"
    page.fill("#scenario-yaml", yaml)
    page.locator("#yaml-form button").click()
    expect(page.locator("#scenario-name")).to_have_text("always-429")
    expect(page.locator("#scenario-error")).to_be_hidden()
    assert create(api).status_code == 429


def test_advancing_the_clock_from_the_page_completes_a_task(page: Any, api: httpx.Client) -> None:
    task_id = create(api).json()["data"]["task_id"]
    row = task_row(page, task_id)
    expect(row.locator(".badge")).to_have_text("IN_PROGRESS")
    before = page.locator("#clock-now").text_content()
    page.fill("#advance-seconds", "60")
    page.locator("#advance-button").click()
    expect(row.locator(".badge")).to_have_text("completed")
    expect(page.locator("#clock-now")).not_to_have_text(before or "")
    data = api.get(f"/api/v1/tasks/{task_id}", headers=AUTH).json()["data"]
    assert data["status"] == "completed"


def test_a_script_in_a_prompt_is_shown_as_text(page: Any, api: httpx.Client) -> None:
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    task_id = create(api, prompt=evil).json()["data"]["task_id"]
    expect(task_row(page, task_id).locator(".prompt")).to_have_text(evil)
    page.locator("#requests tbody tr").first.click()
    expect(page.locator("#detail .request-body")).to_contain_text(json.dumps(evil))
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main script, main img[src='x'], #detail script").count() == 0


def test_a_chat_calls_transcript_shows_a_hostile_message_as_text(
    page: Any, api: httpx.Client
) -> None:
    evil = "<img src=x onerror=alert(1)>"
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    said = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": evil},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type":
            "function", "function": {"name": "lookup", "arguments": json.dumps({"q": evil})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": evil},
    ]  # fmt: skip
    body = {"model": "gemini", "stream": True, "messages": said, "tools": [tool]}
    r = api.post("/api/v1/chat/completions", json=body, headers=AUTH)
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    row = page.locator("#requests tbody tr").first
    expect(row.locator(".badge")).to_have_text("200")
    row.click()
    turns = page.locator("#detail .transcript .turn")
    expect(turns).to_have_count(5)  # four messages sent, then the reply
    expect(turns.nth(1).locator(".role")).to_have_text("user")
    expect(turns.nth(1).locator(".text")).to_have_text(evil)
    expect(turns.nth(2).locator(".tool-call")).to_contain_text('"name":"lookup"')
    expect(turns.nth(3)).to_contain_text("result of call_1")
    expect(turns.nth(3).locator(".text")).to_have_text(evil)
    expect(turns.nth(4).locator(".role")).to_have_text("assistant (reply)")
    expect(turns.nth(4).locator(".text")).to_contain_text("API in One emulator")
    expect(page.locator("#detail .chat-facts")).to_contain_text("finish stop")
    expect(page.locator("#detail .chat-facts")).to_have_text(re.compile(r"· streamed$"))
    assert page.locator("#detail img, #detail script").count() == 0  # no markup from the text


def test_a_chat_call_a_scenario_broke_says_so(page: Any, api: httpx.Client) -> None:
    rule = {"match": {"contains": "garble"}, "reply": "one two three", "fault": {"malformed_at": 2}}
    scenario = {"name": "garble", "chat": {"rules": [rule]}}
    api.put("/_emulator/scenario", json={"scenario": scenario}).raise_for_status()
    said = [{"role": "user", "content": "garble it"}]
    body = {"model": "gemini", "stream": True, "messages": said}
    assert api.post("/api/v1/chat/completions", json=body, headers=AUTH).status_code == 200
    page.locator("#requests tbody tr").first.click()
    expect(page.locator("#detail .transcript .turn.reply .text")).to_have_text("one two three")
    facts = page.locator("#detail .chat-facts")
    expect(facts).to_contain_text("0 credits")
    expect(facts).to_contain_text("broken by fault malformed_at")
    expect(page.locator("#detail .response-body")).to_contain_text('"fault": "malformed_at"')


def test_the_key_filter_shows_one_keys_traffic(page: Any, api: httpx.Client) -> None:
    mine = create(api, key="aio_mine").json()["data"]["task_id"]
    theirs = create(api, key="aio_theirs").json()["data"]["task_id"]
    expect(task_row(page, theirs)).to_have_count(1)
    page.fill("#key-filter", "aio_mine")
    expect(task_row(page, theirs)).to_have_count(0)
    expect(task_row(page, mine)).to_have_count(1)
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    create(api, key="aio_theirs")
    third = create(api, key="aio_mine").json()["data"]["task_id"]
    expect(task_row(page, third)).to_have_count(1)
    expect(page.locator("#tasks tbody tr")).to_have_count(2)


def test_credits_and_reset_from_the_page(page: Any, api: httpx.Client) -> None:
    page.fill("#credits-key", "aio_poor")
    page.fill("#credits-value", "3")
    page.locator("#credits-form button").click()
    expect(page.locator("#flash")).to_contain_text("aio_poor has 3 credits")
    r = create(api, key="aio_poor")  # cogview-4 costs 4
    assert r.status_code == 402
    expect(page.locator("#requests tbody tr").first.locator(".badge")).to_have_text("402")

    task_id = create(api).json()["data"]["task_id"]
    expect(task_row(page, task_id)).to_have_count(1)
    page.locator("#reset-form button").click()
    expect(page.locator("#tasks tbody tr")).to_have_count(0)
    expect(page.locator("#requests tbody tr")).to_have_count(0)
    assert api.get("/_emulator/tasks").json()["tasks"] == []


def test_a_reset_elsewhere_clears_the_page(page: Any, api: httpx.Client) -> None:
    task_id = create(api).json()["data"]["task_id"]
    expect(task_row(page, task_id)).to_have_count(1)
    api.post("/_emulator/reset").raise_for_status()
    expect(task_row(page, task_id)).to_have_count(0)
    again = create(api).json()["data"]["task_id"]  # the same seed: the same id again
    expect(task_row(page, again)).to_have_count(1)
    expect(page.locator("#requests tbody tr")).to_have_count(1)


def test_the_screenshot_script_renders_the_page(browser: Any, tmp_path: Any) -> None:
    from .screenshot import take

    png = take(tmp_path / "dashboard.png", browser).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def finished(page: Any, api: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    """The row of a task of ``path`` once the clock has ended it."""
    r = api.post(path, json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    row = task_row(page, r.json()["data"]["task_id"])
    expect(row.locator(".badge")).to_have_text("IN_PROGRESS")
    expect(row.locator("td.output")).to_be_empty()  # nothing to show until it has finished
    api.post("/_emulator/clock/advance", json={"seconds": 600}).raise_for_status()
    expect(row.locator(".badge")).to_have_text("completed")
    return row


def test_a_finished_video_plays_in_its_row(page: Any, api: httpx.Client) -> None:
    row = finished(page, api, "/api/v1/videos/generations", {"model": "kling-3", "prompt": "a fox"})
    task_id = row.get_attribute("data-task")
    expect(row.locator(".family")).to_have_text("video")
    expect(row.locator(".timing .dim")).to_have_text("1280x720 mp4 · 5 s · 0 polls")
    video = row.locator("td.output video")
    expect(video).to_have_count(1)
    assert video.evaluate("v => [v.controls, v.muted, v.preload]") == [True, True, "metadata"]
    page.wait_for_function("v => v.readyState >= 1", arg=video.element_handle())  # metadata
    seen = video.evaluate("v => ({w: v.videoWidth, h: v.videoHeight, d: v.duration})")
    assert (seen["w"], seen["h"]) == (1280, 720)
    assert seen["d"] == pytest.approx(5, abs=0.1)
    files = api.get("/_emulator/requests", params={"path": f"/files/{task_id}/0.mp4"})
    assert files.json()["requests"] == []  # the page's player is not the app's traffic

    video.evaluate("v => { v.seen = true; }")
    api.get(f"/api/v1/tasks/{task_id}", headers=AUTH).raise_for_status()  # the app polls it
    expect(row.locator(".timing .dim")).to_contain_text("1 polls")  # the row is redrawn...
    assert row.locator("td.output video").evaluate("v => v.seen") is True  # ... not its player

    row.locator("td.output a.open").click()  # full size in the dialog
    full = page.locator("#detail video.full")
    expect(full).to_be_visible()
    page.wait_for_function(
        "v => v.readyState >= 1 && v.videoWidth === 1280", arg=full.element_handle()
    )
    full.evaluate("v => v.play()")  # muted: allowed without a gesture
    page.wait_for_function("v => v.currentTime > 0", arg=full.element_handle())
    page.locator("#detail-close").click()
    expect(page.locator("#detail")).to_be_hidden()
    # closing the dialog stops it: in its "close" event, which a browser fires a task after
    # close() has hidden the dialog (so waited for, never just read once)
    page.wait_for_function("v => v.paused", arg=full.element_handle(), timeout=5000)


def test_a_finished_speech_task_has_an_audio_player(page: Any, api: httpx.Client) -> None:
    text = "Welcome aboard, the next stop is the harbour."  # 45 characters: 3 s
    body = {"model": "elevenlabs-multilingual-v2", "text": text, "voice_id": "v1"}
    row = finished(page, api, "/api/v1/audio/speech", body)
    expect(row.locator(".family")).to_have_text("speech")
    expect(row.locator(".timing .dim")).to_have_text("mp3 · 3 s · 0 polls")
    expect(row.locator(".prompt")).to_have_text(text)
    audio = row.locator("td.output audio")
    expect(audio).to_have_count(1)
    # it loads nothing until played
    assert audio.evaluate("a => [a.controls, a.preload, a.readyState]") == [True, "none", 0]
    duration = audio.evaluate(
        """a => new Promise((done, fail) => {
             a.onloadedmetadata = () => done(a.duration);
             a.onerror = () => fail(new Error("cannot load: " + (a.error && a.error.code)));
             a.load(); a.preload = "metadata";
           })"""
    )
    assert duration == pytest.approx(3, abs=0.1)


def test_an_image_tools_output_is_a_thumbnail_in_its_format(page: Any, api: httpx.Client) -> None:
    image = "https://example.test/in.png"
    body = {"model": "face-swap", "image": image, "face_image": image, "output_format": "webp"}
    row = finished(page, api, "/api/v1/images/tools/face-swap", body)
    expect(row.locator(".family")).to_have_text("tool")
    expect(row.locator(".family")).to_have_attribute("title", "route: face-swap")
    thumbnail = row.locator("td.output img")
    expect(thumbnail).to_have_attribute("src", re.compile(r"/0\.webp$"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 1024", arg=thumbnail.element_handle()
    )
