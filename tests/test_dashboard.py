"""The dashboard's HTTP side: the page and its files, and the incremental feed it polls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.dashboard import FEED_LIMIT

from .conftest import AUTH, Client, make_client

UI_FILES = "/_emulator/ui/images"
IMAGE = "https://example.test/in.png"
#: (route, body, file name) of a task of each family besides images
VIDEO = ("/api/v1/videos/generations", {"model": "kling-3", "prompt": "a lighthouse"}, "0.mp4")
SPEECH = (
    "/api/v1/audio/speech",
    {"model": "elevenlabs-multilingual-v2", "text": "Hello there, general Kenobi", "voice_id": "v"},
    "0.mp3",
)
TOOL = (
    "/api/v1/images/tools/face-swap",
    {"model": "face-swap", "image": IMAGE, "face_image": IMAGE, "output_format": "webp"},
    "0.webp",
)


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
    assert "media-src 'self'" in csp  # the <video> and <audio> players of finished tasks
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
    assert task["files"] == [f"/_emulator/ui/images/{task_id}/0.png"]
    assert (task["kind"], task["label"], task["route"]) == ("image", "image", "images")
    assert (task["size"], task["format"], task["duration_s"]) == ("1024x1024", "png", None)
    assert task["credits_consumed"] == 4
    png = client.get(task["files"][0])
    assert png.content == client.get(f"/files/{task_id}/0.png").content  # the same image
    assert (
        client.get(task["files"][0], headers={"if-none-match": png.headers["etag"]}).status_code
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


def create(client: Client, path: str, body: dict[str, Any]) -> str:
    r = client.post(path, json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["data"]["task_id"]
    return task_id


def finished_row(client: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The feed row of a task of ``path`` once the clock has ended it, checked against what a
    poll of the task says."""
    task_id = create(client, path, body)
    (running,) = feed(client)["tasks"]
    assert running["state"] == "queued" and running["files"] == []
    client.advance(600)
    (row,) = feed(client)["tasks"]
    assert row["id"] == task_id and row["state"] == "succeeded"
    output = client.poll(task_id).json()["data"]["output"]
    (urls,) = [v for k, v in output.items() if k.endswith("_urls")]
    assert [u.replace("http://emulator.test/files", UI_FILES) for u in urls] == row["files"]
    return row


def test_a_video_tasks_row(client: Client) -> None:
    row = finished_row(client, VIDEO[0], {**VIDEO[1], "duration": 10, "aspect_ratio": "9:16"})
    assert (row["kind"], row["label"], row["route"]) == ("video", "video", "videos")
    assert (row["size"], row["format"], row["duration_s"]) == ("720x1280", "mp4", 10.0)
    assert row["files"] == [f"{UI_FILES}/{row['id']}/0.mp4"]


def test_a_speech_tasks_row(client: Client) -> None:
    row = finished_row(client, *SPEECH[:2])
    assert (row["kind"], row["label"], row["route"]) == ("audio", "speech", "speech")
    # no picture; as long as its text (27 characters at 15 a second) takes to say
    assert (row["size"], row["format"], row["duration_s"]) == (None, "mp3", 1.8)
    assert row["files"] == [f"{UI_FILES}/{row['id']}/0.mp3"]
    assert row["prompt"] == SPEECH[1]["text"]  # speech has no prompt: the text it says


def test_a_dialogues_row_shows_its_lines(client: Client) -> None:
    lines = [{"text": "Hello there.", "voice": "A"}, {"text": "General Kenobi!", "voice": "B"}]
    create(client, SPEECH[0], {"model": "elevenlabs-v3", "dialogue": lines})
    (row,) = feed(client)["tasks"]
    assert row["prompt"] == "Hello there. / General Kenobi!"
    assert row["duration_s"] == 1.8  # 27 characters at 15 a second


@pytest.mark.parametrize(
    ("route", "body", "label", "size", "ext"),
    [
        (*TOOL[:2], "tool", "1024x1024", "webp"),
        ("/api/v1/images/tools/upscale", {"model": "image-upscale", "image": IMAGE, "scale": 2},
         "tool", "2048x2048", "png"),
        ("/api/v1/images/tools/face-swap", {**TOOL[1], "output_format": "jpg"}, "tool",
         "1024x1024", "jpg"),
    ],
)  # fmt: skip
def test_an_image_tool_tasks_row(
    client: Client, route: str, body: dict[str, Any], label: str, size: str, ext: str
) -> None:
    row = finished_row(client, route, body)
    assert (row["kind"], row["label"], row["route"]) == ("image", label, route.rsplit("/", 1)[1])
    assert (row["size"], row["format"], row["duration_s"]) == (size, ext, None)
    assert row["files"] == [f"{UI_FILES}/{row['id']}/0.{ext}"]
    got = client.get(row["files"][0])
    assert got.status_code == 200
    assert got.headers["content-type"] == {"webp": "image/webp", "jpg": "image/jpeg"}.get(
        ext, "image/png"
    )


def test_a_failed_tasks_row_says_its_routes_failure(client: Client) -> None:
    client.put("/_emulator/scenario", json={"scenario": "failing-tasks"})
    task_id = create(client, *VIDEO[:2])
    client.advance(600)
    (row,) = feed(client)["tasks"]
    assert row["state"] == "failed" and row["files"] == []
    assert row["error"] == client.poll(task_id).json()["data"]["error"]


@pytest.mark.parametrize(("route", "body", "name"), [VIDEO, SPEECH, TOOL])
def test_the_file_route_answers_ranges_and_revalidation(
    client: Client, route: str, body: dict[str, Any], name: str
) -> None:
    task_id = create(client, route, body)
    client.advance(600)
    url = f"{UI_FILES}/{task_id}/{name}"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert int(whole.headers["content-length"]) == len(whole.content) > 1000
    etag = whole.headers["etag"]

    part = client.get(url, headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.headers["content-type"] == whole.headers["content-type"]
    tail = client.get(url, headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    assert client.get(url, headers={"if-none-match": etag}).status_code == 304
    assert client.get(url, headers={"if-none-match": etag, "range": "bytes=0-9"}).status_code == 304
    past = client.get(url, headers={"range": f"bytes={len(whole.content)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(whole.content)}"
    head = client.head(url, headers={"range": "bytes=0-9"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-length"] == "10"

    assert whole.content == client.get(f"/files/{task_id}/{name}").content  # the same file
    other = "0.png" if name != "0.png" else "0.jpg"
    assert client.get(f"{UI_FILES}/{task_id}/{other}").status_code == 404  # not its format
    assert client.get(f"{UI_FILES}/{task_id}/1.{name.split('.')[1]}").status_code == 404


@pytest.mark.parametrize(("route", "body", "name"), [VIDEO, SPEECH, TOOL])
def test_playing_a_file_on_the_page_changes_nothing(
    client: Client, route: str, body: dict[str, Any], name: str
) -> None:
    second_download_fails = {
        "name": "second-download-fails",
        "rules": [{"match": {"endpoint": "image", "nth": [2]}, "error": {"status": 503}}],
    }
    assert client.put("/_emulator/scenario", json={"scenario": second_download_fails}).is_success
    task_id = create(client, route, body)
    client.advance(600)
    assert client.get(f"/files/{task_id}/{name}").status_code == 200  # the 1st download
    before = client.get("/_emulator/requests").json()["requests"]
    url = f"{UI_FILES}/{task_id}/{name}"
    for headers in ({}, {"range": "bytes=0-"}, {"range": "bytes=500-999"}, {"if-none-match": "*"}):
        assert client.get(url, headers=headers).status_code in (200, 206, 304)
    client.head(url)
    assert client.get("/_emulator/requests").json()["requests"] == before  # not journaled
    assert client.get(f"/files/{task_id}/{name}").status_code == 503  # still the 2nd download


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
    assert detail["response"]["completion"] == answer  # the whole object the client got
    assert detail["response"]["charged"] == answer["credits_consumed"]


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def chat_detail(client: Client, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Make one chat call; its answer (parsed, or the stream's text) and its detail."""
    start = feed(client)
    r = client.post("/api/v1/chat/completions", json=body, headers=AUTH)
    (row,) = feed(client, **cursor(start))["requests"]
    detail = client.get(f"/_emulator/ui/requests/{row['seq']}").json()
    return (r.text if body.get("stream") else r.json()), detail


def test_a_chat_calls_transcript_lists_each_message_then_the_reply(client: Client) -> None:
    said = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "<b>Weather</b> in Oslo?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type":
            "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 4}'},
    ]  # fmt: skip
    body = {"model": "gemini", "stream": False, "messages": said, "tools": [WEATHER]}
    answer, detail = chat_detail(client, body)
    chat = detail["transcript"]
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][1]["text"] == "<b>Weather</b> in Oslo?"
    assert chat["messages"][2]["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'}
    ]
    assert chat["messages"][3] | {} == {
        "role": "tool",
        "text": '{"celsius": 4}',
        "tool_call_id": "call_1",
    }
    reply = answer["choices"][0]
    assert chat["reply"] == {"role": "assistant", "text": reply["message"]["content"],
                             "tool_calls": []}  # fmt: skip
    assert chat["finish_reason"] == reply["finish_reason"] == "stop"
    assert chat["usage"] == answer["usage"] and chat["credits"] == answer["credits_consumed"]
    assert chat["stream"] is False and chat["model"] == "gemini"


def test_a_streamed_tool_call_shows_in_the_transcript(client: Client) -> None:
    said = [{"role": "user", "content": "What is the weather in Oslo?"}]
    body = {"model": "gemini", "stream": True, "messages": said, "tools": [WEATHER],
            "tool_choice": "required"}  # fmt: skip
    events, detail = chat_detail(client, body)
    chunks = [json.loads(line[6:]) for line in events.splitlines()
              if line.startswith("data: {")]  # fmt: skip
    (start,) = [d["tool_calls"][0] for c in chunks for ch in c["choices"]
                if (d := ch["delta"]).get("tool_calls") and "id" in d["tool_calls"][0]]  # fmt: skip
    arguments = "".join(
        d["tool_calls"][0]["function"].get("arguments", "")
        for c in chunks for ch in c["choices"] if (d := ch["delta"]).get("tool_calls")
    )  # fmt: skip
    chat = detail["transcript"]
    assert chat["messages"] == [{"role": "user", "text": "What is the weather in Oslo?"}]
    assert chat["reply"]["text"] is None
    assert chat["reply"]["tool_calls"] == [
        {"id": start["id"], "name": "get_weather", "arguments": arguments}
    ]
    assert "city" in json.loads(arguments)  # the arguments the stream carried, whole
    assert chat["finish_reason"] == "tool_calls" and chat["stream"] is True
    assert chat["credits"] == chunks[-1]["credits_consumed"] >= 1


def test_a_broken_stream_shows_its_fault_in_the_transcript(client: Client) -> None:
    rule = {"match": {"contains": "garble"}, "reply": "one two three", "fault": {"malformed_at": 2}}
    client.app.state.emulator.use_scenario({"name": "garble", "chat": {"rules": [rule]}})  # type: ignore[attr-defined]
    said = [{"role": "user", "content": "garble it"}]
    _, detail = chat_detail(client, {"model": "gemini", "stream": True, "messages": said})
    chat = detail["transcript"]
    assert chat["reply"] == {"role": "assistant", "text": "one two three", "tool_calls": []}
    assert (chat["fault"], chat["cut"], chat["credits"]) == ("malformed_at", False, 0)


def test_a_refused_chat_call_has_a_transcript_without_reply(client: Client) -> None:
    _, detail = chat_detail(client, {"model": "gemini", "messages": []})
    assert detail["status"] == 400
    assert detail["transcript"] == {"model": "gemini", "messages": [], "reply": None}


def test_other_requests_have_no_transcript(client: Client) -> None:
    start = feed(client)
    client.create()
    (row,) = feed(client, **cursor(start))["requests"]
    assert "transcript" not in client.get(f"/_emulator/ui/requests/{row['seq']}").json()


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
