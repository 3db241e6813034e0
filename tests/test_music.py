"""The Suno suite, black-box through HTTP: generate, the feed over time, /tasks, clips (decoded)
and their covers, extend, cover, upload-cover, timestamped lyrics, prices and refunds, aliases,
strict limits, error types, webhooks, and MelodIA's body end to end."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from emulator.catalogue import Catalogue

from .conftest import KEY, Client, make_client
from .test_webhooks import AUTH as HOOK_AUTH
from .test_webhooks import Receiver, receiver, virtual_http, wait_until  # noqa: F401

AUTH = {"Authorization": f"Bearer {KEY}"}
MUSIC = "/api/v1/audio/music"
HOST = "http://emulator.test"
MELODIA = {
    "model": "suno",
    "prompt": "[Verse]\nCanto bajo el sol\nbailo sin parar\n[Chorus]\nla vida es hoy",
    "style": "pop, happy, spanish lyrics, emotional",
    "make_instrumental": False,
    "title": "MelodIA - happy",
}


def post(client: Client, path: str, **body: Any) -> Any:
    return client.post(MUSIC + path, json=body, headers=AUTH)


def get(client: Client, path: str) -> Any:
    return client.get(MUSIC + path, headers=AUTH)


def credits(client: Client) -> int:
    return int(client.get(f"/_emulator/keys/{KEY}").json()["credits"])


def generate(client: Client, **body: Any) -> str:
    r = post(client, "", **{"prompt": "la la la", **body})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "IN_PROGRESS"
    return str(r.json()["data"]["task_id"])


def done(client: Client, **body: Any) -> str:
    task_id = generate(client, **body)
    client.advance(600)
    return task_id


def strict_client() -> Client:
    client = make_client()
    r = client.put("/_emulator/scenario", json={"scenario": {"name": "strict", "strict": True}})
    assert r.status_code == 200, r.text
    return client


def test_melodia_body_end_to_end(client: Client) -> None:
    r = client.post(MUSIC, json=MELODIA, headers=AUTH)
    task_id = r.json()["data"]["task_id"]
    assert task_id.startswith("gen") and task_id.endswith("bksv") and len(task_id) == 40
    for _ in range(40):  # every 3 s, 40 tries, as MelodIA polls
        data = client.poll(task_id).json()["data"]
        if (data["output"] or {}).get("audio_url"):
            break
        client.advance(3)
    else:
        pytest.fail("no audio_url after 40 polls")
    output = data["output"]
    assert data["model"] == "chirp-v3-5" and data["credits_consumed"] == 5
    assert len(output["clips"]) == 2 and output["audio_urls"] == [c["audio_url"] for c in
                                                                     output["clips"]]  # fmt: skip
    for clip in output["clips"]:
        assert clip["title"] == "MelodIA - happy" and 120 <= clip["duration"] <= 240
        assert clip["duration"] == int(clip["duration"])
        audio = client.get(clip["audio_url"].replace(HOST, ""))
        assert audio.headers["content-type"] == "audio/mpeg"
        with av.open(io.BytesIO(audio.content)) as container:
            assert container.duration / 1e6 == pytest.approx(clip["duration"], abs=0.2)
        cover = client.get(clip["image_url"].replace(HOST, ""))
        with Image.open(io.BytesIO(cover.content)) as image:
            assert image.format == "PNG" and image.size == (1024, 1024)


def test_the_feed_goes_text_first_complete(client: Client) -> None:
    task_id = generate(client, title="Song")
    script = client.get("/_emulator/tasks").json()
    assert script  # the task exists before any poll
    stages = []
    for _ in range(60):
        r = get(client, f"/feed?task_id={task_id}")
        data = r.json()["data"]
        stages.append((data["type"], tuple(c["status"] for c in data["response_data"])))
        if data["type"] == "SUCCESS":
            break
        client.advance(2)
    assert stages[0] == ("IN_PROGRESS", ("text", "text"))
    assert ("IN_PROGRESS", ("first", "text")) in stages
    assert stages[-1] == ("SUCCESS", ("complete", "complete"))
    first = next(i for i, s in enumerate(stages) if s[1][0] == "first")
    assert all(s[1][0] == "text" for s in stages[:first])
    clip = data["response_data"][0]
    assert clip["extra_message"] == "All generated successfully." and clip["error_message"] == ""
    assert data["request_body"]["title"] == "Song"
    assert get(client, f"/feed?workId={task_id}").json() == r.json()  # the older name


def test_the_first_clip_plays_from_half_the_run(client: Client) -> None:
    task_id = generate(client)
    for _ in range(60):
        clip = get(client, f"/feed?task_id={task_id}").json()["data"]["response_data"][0]
        if clip["status"] == "first":
            break
        client.advance(1)
    assert clip["audio_url"].endswith("/0.mp3")
    assert client.get(clip["audio_url"].replace(HOST, "")).status_code == 200
    assert client.get(f"/files/{task_id}/1.mp3").status_code == 404  # not yet


def test_feed_errors(client: Client) -> None:
    assert get(client, "/feed").status_code == 400
    r = get(client, "/feed?task_id=gen0bksv")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    task_id = generate(client)
    other = {"Authorization": "Bearer aio_other"}
    assert client.get(f"{MUSIC}/feed?task_id={task_id}", headers=other).status_code == 404
    assert client.get(f"{MUSIC}/feed?task_id={task_id}").status_code == 401


@pytest.mark.parametrize(
    ("model", "price", "resolved"),
    [
        (None, 5, "chirp-v3-5"),
        ("suno", 5, "chirp-v3-5"),
        ("chirp-v4-0", 8, "chirp-v4-0"),
        ("suno-v4-0-pro", 8, "chirp-v4-0"),
        ("suno-v4-0-vip", 8, "chirp-v4-0"),
        ("chirp-v4-5", 10, "chirp-v4-5"),
        ("suno-v4-5-plus", 10, "chirp-v4-5-plus"),
        ("suno-v5-0", 12, "chirp-v5"),
        ("chirp-v5-5", 12, "chirp-v5-5"),
    ],
)
def test_prices_per_task_and_aliases(client: Client, model: str | None, price: int,
                                     resolved: str) -> None:  # fmt: skip
    before = credits(client)
    body = {} if model is None else {"model": model}
    task_id = done(client, **body)
    data = client.poll(task_id).json()["data"]
    assert data["model"] == resolved and data["credits_consumed"] == price
    assert before - credits(client) == price


def test_a_failed_generate_is_refunded_with_the_music_reason() -> None:
    client = make_client()
    scenario = {
        "name": "fail",
        "rules": [{"match": {"route": "music"}, "task": {"outcome": "fail"}}],
    }
    assert client.put("/_emulator/scenario", json={"scenario": scenario}).status_code == 200
    before = credits(client)
    task_id = done(client)
    data = client.poll(task_id).json()["data"]
    assert data["status"] == "failed" and data["error"] == "Music generation failed"
    feed = get(client, f"/feed?task_id={task_id}").json()["data"]
    assert feed["type"] == "FAILED"
    assert {c["fail_message"] for c in feed["response_data"]} == {"Music generation failed"}
    assert credits(client) == before


def test_short_credits_are_402(client: Client) -> None:
    client.put(f"/_emulator/keys/{KEY}", json={"credits": 4})
    assert post(client, "", prompt="x").status_code == 402


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "gpt_description_prompt or prompt"),
        ({"prompt": "x" * 5001}, "prompt"),
        ({"gpt_description_prompt": "x" * 401}, "gpt_description_prompt"),
        ({"prompt": "x", "style": "x" * 1001}, "style"),
        ({"prompt": "x", "title": "x" * 101}, "title"),
        ({"prompt": "x", "model": "chirp-v9"}, "model"),
        ({"prompt": "x", "make_instrumental": "no"}, "make_instrumental"),
    ],
)
def test_bad_generate_bodies_are_bad_request(client: Client, body: dict[str, Any],
                                             field: str) -> None:  # fmt: skip
    r = client.post(MUSIC, json=body, headers=AUTH)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "bad_request" and error["message"].startswith(field)


def test_other_routes_keep_invalid_request_error(client: Client) -> None:
    r = client.post("/api/v1/videos/generations", json={"model": "nope"}, headers=AUTH)
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_strict_mode_applies_the_old_limits() -> None:
    with strict_client() as client:
        for model, body in [
            ("chirp-v3-5", {"prompt": "x" * 3001}),
            ("chirp-v4-0", {"prompt": "x", "style": "x" * 201}),
            ("chirp-v5", {"prompt": "x", "title": "x" * 81}),
        ]:
            r = post(client, "", model=model, **body)
            assert r.status_code == 400 and "strict mode" in r.json()["error"]["message"]
        assert (
            post(client, "", model="chirp-v4-5", prompt="x" * 3001, style="x" * 201).status_code
            == 200
        )
    with make_client() as client:
        assert post(client, "", model="chirp-v3-5", prompt="x" * 3001).status_code == 200


def test_extend(client: Client) -> None:
    origin = done(client, model="chirp-v4-0", title="Origin")
    length = client.poll(origin).json()["data"]["output"]["clips"][1]["duration"]
    before = credits(client)
    r = post(client, "/extend", origin_task_id=origin, extend_audio_index=1)
    assert r.status_code == 200 and r.json()["data"]["status"] == "IN_PROGRESS"
    task_id = r.json()["data"]["task_id"]
    assert task_id.startswith("gen") and task_id.endswith("bksv")
    client.advance(600)
    feed = get(client, f"/feed?task_id={task_id}").json()["data"]
    assert feed["type"] == "SUCCESS" and feed["request_body"]["title"] == "Origin"  # inherited
    for clip in feed["response_data"]:
        assert length + 60 <= clip["duration"] <= length + 120
    assert before - credits(client) == 8  # the origin's model and price
    r = post(client, "/extend", origin_task_id=origin, extend_audio_index=0, custom_mode=True,
             prompt="new words", extensionStartTime=30, model="chirp-v5")  # fmt: skip
    client.advance(600)
    data = client.poll(r.json()["data"]["task_id"]).json()["data"]
    assert data["model"] == "chirp-v5" and data["credits_consumed"] == 12
    assert all(90 <= c["duration"] <= 150 for c in data["output"]["clips"])


def test_extend_errors(client: Client) -> None:
    running = generate(client)
    cases = [
        ({"extend_audio_index": 0}, 400),
        ({"origin_task_id": running, "extend_audio_index": 2}, 400),
        ({"origin_task_id": "gen0bksv", "extend_audio_index": 0}, 404),
        ({"origin_task_id": running, "extend_audio_index": 0}, 400),  # not finished
    ]
    for body, status in cases:
        r = post(client, "/extend", **body)
        assert r.status_code == status, (body, r.text)
    client.advance(600)
    r = post(client, "/extend", origin_task_id=running, extend_audio_index=0, custom_mode=True)
    assert r.status_code == 400 and r.json()["error"]["type"] == "bad_request"
    r = post(client, "/extend", origin_task_id=running, extend_audio_index=0,
             extensionStartTime=9999)  # fmt: skip
    assert r.status_code == 400


def test_cover_once_per_task(client: Client) -> None:
    running = generate(client)
    r = post(client, "/cover/generate", task_id=running)
    assert r.status_code == 400  # not finished
    assert r.json()["error"]["message"].startswith("Cover already generated for this task")
    client.advance(600)
    before = credits(client)
    r = post(client, "/cover/generate", taskId=running)  # the older name
    body = r.json()
    assert body["code"] == 200 and body["msg"] == "success"
    cover_id = body["data"]["taskId"]
    assert cover_id.startswith("cover") and len(cover_id) == 23
    status = get(client, f"/cover/status?task_id={cover_id}").json()
    assert status["msg"] == "success" and status["data"]["status"] == "IN_PROGRESS"
    assert status["data"]["images"] == []
    assert post(client, "/cover/generate", task_id=running).status_code == 400  # once
    client.advance(60)
    data = get(client, f"/cover/status?task_id={cover_id}").json()["data"]
    assert data["status"] == "SUCCESS" and data["taskId"] == cover_id and len(data["images"]) == 2
    for url in data["images"]:
        with Image.open(io.BytesIO(client.get(url.replace(HOST, "")).content)) as image:
            assert image.size == (1024, 1024)
    assert before - credits(client) == 1
    r = post(client, "/cover/generate", task_id="gen0bksv")
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("Original music task or cover task not found")
    assert get(client, "/cover/status?task_id=cover0").status_code == 404
    assert get(client, "/cover/status").status_code == 400


def test_upload_cover(client: Client) -> None:
    before = credits(client)
    r = post(client, "/upload-cover/generate", audio_id="my-upload", title="Mine")
    assert r.status_code == 200 and set(r.json()["data"]) == {"task_id"}
    task_id = r.json()["data"]["task_id"]
    assert task_id.startswith("upl") and task_id.endswith("bksv") and len(task_id) == 40
    status = get(client, f"/upload-cover/status?task_id={task_id}").json()["data"]
    assert status["status"] == "IN_PROGRESS" and status["task_id"] == task_id
    client.advance(600)
    status = get(client, f"/upload-cover/status?task_id={task_id}").json()["data"]
    assert status["status"] == "SUCCESS"
    assert all(30 <= c["duration"] <= 60 for c in status["response_data"])
    assert get(client, f"/feed?task_id={task_id}").status_code == 200  # the feed knows it too
    assert before - credits(client) == 8  # max(8, 5)
    r = post(client, "/upload-cover/generate", audio_id="a", model="chirp-v5")
    client.advance(600)
    assert before - credits(client) == 8 + 12
    assert post(client, "/upload-cover/generate").status_code == 400
    assert post(client, "/upload-cover/generate", audio_id="a", custom_mode=True).status_code == 400
    assert get(client, "/upload-cover/status?task_id=upl0").status_code == 404


def test_timestamped_lyrics(client: Client) -> None:
    task_id = done(client, prompt="[Verse]\none line\ntwo line\n[Chorus]\nthree", style="rock")
    clip = client.poll(task_id).json()["data"]["output"]["clips"][0]
    before = credits(client)
    r = post(client, "/timestamped-lyrics", task_id=task_id, audio_id=clip["id"])
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    kinds = [p["type"] for p in data["lyricParams"]]
    assert kinds == ["segment_break", "lyric", "lyric", "segment_break", "lyric"]
    assert data["lyricParams"][0]["metadata"] == {"style": "rock"}
    lyrics = [p for p in data["lyricParams"] if p["type"] == "lyric"]
    step = clip["duration"] / 3
    assert [(p["start"], p["end"]) for p in lyrics] == [
        (round(i * step, 2), round((i + 1) * step, 2)) for i in range(3)
    ]
    assert len(data["waveform"]) == 100 and all(0 <= v <= 1 for v in data["waveform"])
    assert before - credits(client) == 2
    # not charged: unknown clip, missing fields, instrumental
    r = post(client, "/timestamped-lyrics", task_id=task_id, audio_id="nope")
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("Audio or lyrics not found")
    r = post(client, "/timestamped-lyrics", task_id=task_id)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(
        "Missing task_id or audio_id"
    )
    quiet = done(client, gpt_description_prompt="calm piano", make_instrumental=True, prompt=None)
    clip = client.poll(quiet).json()["data"]["output"]["clips"][0]
    assert (
        post(client, "/timestamped-lyrics", task_id=quiet, audio_id=clip["id"]).status_code == 404
    )
    assert before - credits(client) == 2 + 5  # the lyrics once, the instrumental song


def test_described_songs_get_seeded_lyrics(client: Client) -> None:
    task_id = done(client, gpt_description_prompt="a song about rain", prompt=None)
    clip = client.poll(task_id).json()["data"]["output"]["clips"][1]
    data = post(client, "/timestamped-lyrics", task_id=task_id, audio_id=clip["id"]).json()["data"]
    again = post(client, "/timestamped-lyrics", task_id=task_id, audio_id=clip["id"]).json()
    assert data == again["data"] and data["text"].startswith("[Verse]")


def test_an_mp3_clip_is_served_in_ranges(client: Client) -> None:
    task_id = done(client)
    url = f"/files/{task_id}/0.mp3"
    head = client.head(url)
    assert head.status_code == 200 and head.headers["accept-ranges"] == "bytes"
    size = int(head.headers["content-length"])
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert client.get(f"/files/{task_id}/0.mp4").status_code == 404


def test_clips_are_a_pure_function_of_the_seed() -> None:
    def clips() -> list[Any]:
        with make_client(seed=7) as client:
            task_id = done(client)
            return list(client.poll(task_id).json()["data"]["output"]["clips"])

    assert clips() == clips()


def test_the_catalogue_route_of_covers_is_the_music_package_s() -> None:
    from emulator.music.wire import MUSIC_PATHS

    route = Catalogue.load().routes["music-cover"]
    assert route.path in MUSIC_PATHS and route.served_by == "music"


# -- webhooks: the feed body (generate, extend), the upload-cover status body ----------------


@pytest.fixture
def hooked(
    virtual_http: httpx.Client,  # noqa: F811 (the fixtures of test_webhooks.py)
    receiver: tuple[Receiver, str],  # noqa: F811
) -> Iterator[tuple[httpx.Client, Receiver, str]]:
    hooks, url = receiver
    virtual_http.post("/_emulator/reset")
    hooks.clear()
    yield virtual_http, hooks, url
    virtual_http.post("/_emulator/reset")


def test_webhooks_carry_the_feed_and_upload_status_bodies(
    hooked: tuple[httpx.Client, Receiver, str],
) -> None:
    c, hooks, url = hooked
    r = c.post(MUSIC, json={**MELODIA, "callback_url": url + "/gen"}, headers=HOOK_AUTH)
    gen = r.json()["data"]["task_id"]
    r = c.post(MUSIC + "/upload-cover/generate", json={"audio_id": "a", "callback_url": url + "/upl"},
               headers=HOOK_AUTH)  # fmt: skip
    upl = r.json()["data"]["task_id"]
    c.post("/_emulator/clock/advance", json={"seconds": 600})
    wait_until(lambda: len(hooks.received) >= 2)
    by_path = {h["path"]: h["body"] for h in hooks.received}
    feed = c.get(f"{MUSIC}/feed?task_id={gen}", headers=HOOK_AUTH).json()
    assert by_path["/gen"] == feed and feed["data"]["type"] == "SUCCESS"
    status = c.get(f"{MUSIC}/upload-cover/status?task_id={upl}", headers=HOOK_AUTH).json()
    assert by_path["/upl"] == status


def test_strict_mode_refuses_unknown_fields_on_upload_cover_and_extend() -> None:
    body = {"audio_id": "song_abc123", "mood": "happy"}
    with make_client() as client:
        assert (
            client.post(MUSIC + "/upload-cover/generate", json=body, headers=AUTH).status_code
            == 200
        )
    with strict_client() as client:
        r = client.post(MUSIC + "/upload-cover/generate", json=body, headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("mood: unknown")
        r = client.post(MUSIC + "/extend", json={"origin_task_id": "gen1", "extend_audio_index": 0,
                                                "x": 1}, headers=AUTH)  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("x: unknown")
