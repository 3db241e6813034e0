"""Videos, speech and image tools, black-box through HTTP: create -> poll -> download for every
model of every route, the files they give (decoded), credits, validation and leniency."""

from __future__ import annotations

import io
from typing import Any

import av
import pytest
from PIL import Image

from emulator.catalogue import Catalogue

from .conftest import KEY, Client, make_client

CATALOGUE = Catalogue.load()
AUTH = {"Authorization": f"Bearer {KEY}"}
IMAGE = "https://example.test/in.png"

#: the smallest valid body of each model (its own required fields)
BODIES: dict[str, dict[str, Any]] = {
    "kling-3": {"prompt": "a lighthouse at dusk"},
    "seedance-1-5-pro": {"prompt": "a lighthouse at dusk"},
    "hailuo/2-3-image-to-video-standard": {"prompt": "a lighthouse", "image": IMAGE},
    "hailuo/2-3-image-to-video-pro": {"prompt": "a lighthouse", "image": IMAGE},
    "grok-imagine/text-to-video": {"prompt": "a lighthouse at dusk"},
    "grok-imagine/image-to-video": {"image_urls": [IMAGE]},
    "wan-2-6": {"prompt": "a lighthouse at dusk"},
    "elevenlabs-v3": {"dialogue": [{"text": "Hello there, this is a test line.", "voice": "A"}]},
    "elevenlabs-multilingual-v2": {"text": "Hello there", "voice_id": "v1"},
    "elevenlabs-multilingual-v1": {"text": "Hello there", "voice_id": "v1"},
    "elevenlabs-turbo-v2-5": {"text": "Hello there", "voice_id": "v1"},
    "bg-remover": {"image": IMAGE},
    "image-upscale": {"image": IMAGE, "scale": 2},
    "face-swap": {"image": IMAGE, "face_image": IMAGE, "output_format": "webp"},
}
#: (the Suno routes, music and its covers, are tests/test_music.py's)
OTHER_ROUTES = [
    r for r in CATALOGUE.routes.values()
    if r.name != "images" and not r.name.startswith("music")
]  # fmt: skip
CASES = [(r, m) for r in OTHER_ROUTES for m in CATALOGUE.route_models(r)]


def strict_client() -> Client:
    client = make_client()
    r = client.put("/_emulator/scenario", json={"scenario": {"name": "strict", "strict": True}})
    assert r.status_code == 200, r.text
    return client


def create(client: Client, path: str, **body: Any) -> Any:
    return client.post(path, json=body, headers=AUTH)


def finish(client: Client, task_id: str) -> dict[str, Any]:
    client.advance(600)
    r = client.poll(task_id)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_every_model_of_every_new_route_has_a_body_here() -> None:
    assert {m.id for _, m in CASES} == set(BODIES)


@pytest.mark.parametrize(("route", "model"), CASES, ids=[m.id for _, m in CASES])
def test_create_poll_download_for_every_model(client: Client, route: Any, model: Any) -> None:
    before = client.get(f"/_emulator/keys/{KEY}").json()["credits"]
    r = create(client, route.path, model=model.id, **BODIES[model.id])
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["code"] == 200 and created["data"]["status"] == "IN_PROGRESS"
    task_id = created["data"]["task_id"]
    assert task_id.startswith(f"n{model.node}") and task_id.endswith(f"_{model.tag}")
    data = finish(client, task_id)
    assert data["status"] == "completed" and data["model"] == model.id
    output = data["output"]
    kind = route.output
    assert set(output) == {kind.url_field, kind.urls_field}
    url = output[kind.url_field]
    assert output[kind.urls_field] == [url]
    file = client.get(url.replace("http://emulator.test", ""))
    assert file.status_code == 200
    assert file.headers["content-type"] == kind.formats[url.rsplit(".", 1)[1]]
    assert file.headers["accept-ranges"] == "bytes"
    after = client.get(f"/_emulator/keys/{KEY}").json()["credits"]
    assert before - after == data["credits_consumed"] > 0
    if kind.kind == "image":
        with Image.open(io.BytesIO(file.content)) as image:
            assert image.size[0] >= 1024
    else:
        with av.open(io.BytesIO(file.content)) as container:
            assert container.duration is not None and container.duration > 0


def test_a_kling_video_is_the_size_and_length_asked(client: Client) -> None:
    r = create(
        client,
        "/api/v1/videos/generations",
        model="kling-3",
        prompt="a red fox",
        duration=4,
        aspect_ratio="9:16",
        mode="pro",
        sound=False,
    )
    data = finish(client, r.json()["data"]["task_id"])
    assert data["credits_consumed"] == 4 * 60
    body = client.get(data["output"]["video_url"].replace("http://emulator.test", "")).content
    with av.open(io.BytesIO(body)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1080, 1920)
        assert stream.codec_context.name == "h264"
        assert container.duration == pytest.approx(4_000_000, abs=250_000)
        assert not container.streams.audio  # no sound asked


@pytest.mark.parametrize(
    ("body", "credits"),
    [
        ({"model": "kling-3", "prompt": "a cat"}, 300),  # the documented default: std 5 s sound
        ({"model": "kling-3", "prompt": "a cat", "sound": False, "duration": 3}, 120),
        ({"model": "kling-3", "prompt": "a cat", "mode": "pro", "duration": 15}, 1200),
        ({"model": "seedance-1-5-pro", "prompt": "a cat", "duration": "4"}, 14),
        (
            {
                "model": "seedance-1-5-pro",
                "prompt": "a cat",
                "duration": "12",
                "generateAudio": True,
            },
            84,
        ),
        (
            {"model": "seedance-1-5-pro", "prompt": "a cat", "duration": "4", "resolution": "480p"},
            8,
        ),
        ({"model": "hailuo-2-3", "prompt": "a cat", "image": IMAGE}, 30),
        (
            {
                "model": "hailuo/2-3-image-to-video-pro",
                "prompt": "a cat",
                "image": IMAGE,
                "resolution": "1080P",
            },
            85,
        ),
        ({"model": "grok-video", "prompt": "a cat"}, 24),
        ({"model": "wan-2-6", "prompt": "a cat", "duration": 15}, 80),
    ],
)
def test_video_prices_follow_the_contract(
    client: Client, body: dict[str, Any], credits: int
) -> None:
    r = create(client, "/api/v1/videos/generations", **body)
    assert r.status_code == 200, r.text
    assert finish(client, r.json()["data"]["task_id"])["credits_consumed"] == credits


def test_what_the_video_director_sends_is_accepted_and_refused_only_when_strict() -> None:
    """The public browser app sends seedance an integer duration (10) and a 'sound' field,
    and kling-3 a duration of 2 with four scenes: lenient by default, 400 in strict mode."""
    seedance = {
        "model": "seedance-1-5-pro",
        "prompt": "a scene",
        "duration": 10,
        "aspect_ratio": "16:9",
        "sound": False,
        "resolution": "720p",
        "generateAudio": False,
    }
    kling = {
        "model": "kling-3",
        "prompt": "a scene",
        "duration": 2,
        "aspect_ratio": "16:9",
        "sound": False,
        "mode": "std",
    }
    with make_client() as client:
        r = create(client, "/api/v1/videos/generations", **seedance)
        assert r.status_code == 200, r.text
        data = finish(client, r.json()["data"]["task_id"])
        assert data["credits_consumed"] == 42  # priced as the next documented duration, 12 s
        video = client.get(data["output"]["video_url"].replace("http://emulator.test", ""))
        with av.open(io.BytesIO(video.content)) as container:
            assert container.duration == pytest.approx(10_000_000, abs=250_000)  # as asked
        assert create(client, "/api/v1/videos/generations", **kling).status_code == 200
    with strict_client() as client:
        r = create(client, "/api/v1/videos/generations", **seedance)
        assert r.status_code == 400 and "duration" in r.json()["error"]["message"]
        r = create(client, "/api/v1/videos/generations", **{**seedance, "duration": "12"})
        assert r.status_code == 400 and "sound" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/videos/generations", {"model": "cogview-4", "prompt": "a cat"}, "model"),
        ("/api/v1/images/generations", {"model": "kling-3", "prompt": "a cat"}, "model"),
        ("/api/v1/videos/generations", {"model": "kling-3"}, "prompt"),
        (
            "/api/v1/videos/generations",
            {"model": "kling-3", "prompt": "a cat", "duration": 16},
            "duration",
        ),
        (
            "/api/v1/videos/generations",
            {"model": "kling-3", "prompt": "a cat", "duration": 2.5},
            "duration",
        ),
        (
            "/api/v1/videos/generations",
            {"model": "kling-3", "prompt": "a cat", "sound": "yes"},
            "sound",
        ),
        ("/api/v1/videos/generations", {"model": "kling-3", "multi_shots": True}, "multi_prompt"),
        ("/api/v1/videos/generations", {"model": "hailuo-2-3", "prompt": "a cat"}, "image"),
        (
            "/api/v1/videos/generations",
            {
                "model": "hailuo-2-3",
                "prompt": "a cat",
                "image": IMAGE,
                "resolution": "1080P",
                "duration": "10",
            },
            "duration",
        ),
        ("/api/v1/videos/generations", {"model": "grok-imagine/image-to-video"}, "image_urls"),
        ("/api/v1/audio/speech", {"model": "elevenlabs-v3"}, "dialogue"),
        (
            "/api/v1/audio/speech",
            {"model": "elevenlabs-v3", "dialogue": [{"voice": "A"}]},
            "dialogue[0].text",
        ),
        ("/api/v1/audio/speech", {"model": "elevenlabs-v3", "text": "hi", "speed": 3}, "speed"),
        ("/api/v1/audio/speech", {"model": "elevenlabs-v3", "text": "x" * 5001}, "text"),
        (
            "/api/v1/images/tools/upscale",
            {"model": "image-upscale", "image": IMAGE, "scale": 5},
            "scale",
        ),
        ("/api/v1/images/tools/face-swap", {"model": "face-swap", "image": IMAGE}, "face_image"),
        ("/api/v1/images/tools/remove-bg", {"model": "bg-remover", "image": "ftp://x"}, "image"),
    ],
)
def test_bad_bodies_get_the_envelope_naming_the_field(
    client: Client, path: str, body: dict[str, Any], field: str
) -> None:
    r = create(client, path, **body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith(field)
    assert client.get(f"/_emulator/keys/{KEY}").json()["reserved"] == 0


def test_speech_lasts_as_its_text_and_is_priced_per_character(client: Client) -> None:
    text = "word " * 60  # 300 characters: 20 s at 15 a second, 9 credits at 28 per 1000
    r = create(
        client,
        "/api/v1/audio/speech",
        model="elevenlabs-v3",
        dialogue=[{"text": text[:150]}, {"text": text[150:], "voice": "B"}],
    )
    data = finish(client, r.json()["data"]["task_id"])
    assert data["credits_consumed"] == 9
    assert set(data["output"]) == {"audio_url", "audio_urls"}
    audio = client.get(data["output"]["audio_url"].replace("http://emulator.test", ""))
    assert audio.headers["content-type"] == "audio/mpeg"
    with av.open(io.BytesIO(audio.content)) as container:
        assert container.duration == pytest.approx(20_000_000, abs=100_000)


def test_the_speech_body_of_the_public_app_works_on_every_id_but_not_when_strict() -> None:
    body = {"text": "Line one.", "voice_id": "abc", "speed": 1.0, "stability": 0.5}
    with make_client() as client:
        for model in ("elevenlabs-multilingual-v2", "elevenlabs-turbo-v2-5", "elevenlabs-v3"):
            assert create(client, "/api/v1/audio/speech", model=model, **body).status_code == 200
    with strict_client() as client:
        r = create(client, "/api/v1/audio/speech", model="elevenlabs-multilingual-v2", **body)
        assert r.status_code == 400 and "strict mode" in r.json()["error"]["message"]
        r = create(client, "/api/v1/audio/speech", model="elevenlabs-v3", **body)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("text")


def test_image_tools_give_their_formats_and_sizes(client: Client) -> None:
    cases = [
        (
            "/api/v1/images/tools/remove-bg",
            {"model": "bg-remover", "image": IMAGE},
            "PNG",
            "RGBA",
            (1024, 1024),
        ),
        (
            "/api/v1/images/tools/upscale",
            {"model": "image-upscale", "image": IMAGE},
            "PNG",
            None,
            (4096, 4096),
        ),
        (
            "/api/v1/images/tools/face-swap",
            {"model": "face-swap", "image": IMAGE, "face_image": IMAGE, "output_format": "jpg"},
            "JPEG",
            "RGB",
            (1024, 1024),
        ),
    ]
    for path, body, fmt, mode, size in cases:
        data = finish(client, create(client, path, **body).json()["data"]["task_id"])
        url = data["output"]["image_url"]
        with Image.open(
            io.BytesIO(client.get(url.replace("http://emulator.test", "")).content)
        ) as im:
            assert (im.format, im.size) == (fmt, size)
            if mode is not None:
                assert im.mode == mode
            if mode == "RGBA":
                assert im.getpixel((5, im.size[1] // 3))[3] == 0  # the background is see-through


def test_a_video_is_served_in_ranges_as_players_ask(client: Client) -> None:
    r = create(client, "/api/v1/videos/generations", model="grok-video", prompt="a cat")
    url = finish(client, r.json()["data"]["task_id"])["output"]["video_url"]
    path = url.replace("http://emulator.test", "")
    whole = client.get(path)
    part = client.get(path, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    tail = client.get(path, headers={"Range": f"bytes={len(whole.content)}-"})
    assert tail.status_code == 416
    assert tail.headers["content-range"] == f"bytes */{len(whole.content)}"
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(whole.content))
    assert client.get(path.replace(".mp4", ".png")).status_code == 404  # not this task's kind
    again = client.get(path, headers={"If-None-Match": whole.headers["etag"]})
    assert again.status_code == 304


def test_a_failed_video_gets_the_video_failure_reason() -> None:
    with make_client() as client:
        fail = {"name": "fail", "defaults": {"task": {"outcome": "fail"}}}
        assert client.put("/_emulator/scenario", json={"scenario": fail}).status_code == 200
        r = create(client, "/api/v1/videos/generations", model="wan-2-6", prompt="a cat")
        data = finish(client, r.json()["data"]["task_id"])
        assert data["status"] == "failed" and data["error"] == "Video generation failed"
        assert data["credits_consumed"] == 0


def test_a_rule_matches_a_route_for_creates_polls_and_files(client: Client) -> None:
    rule = {"name": "no-videos", "match": {"route": "videos"}, "error": {"status": 503}}
    scenario = {"name": "videos-down", "rules": [rule]}
    assert client.put("/_emulator/scenario", json={"scenario": scenario}).status_code == 200
    r = create(client, "/api/v1/videos/generations", model="grok-video", prompt="a cat")
    assert r.status_code == 503
    assert client.create().status_code == 200  # the image route is untouched
    r = create(client, "/api/v1/audio/speech", model="elevenlabs-v3", text="Hello there")
    assert r.status_code == 200
    client.advance(600)
    assert client.poll(r.json()["data"]["task_id"]).status_code == 200
    entry = client.get("/_emulator/requests").json()["requests"][0]
    assert entry["rule"] is not None and "no-videos" in entry["rule"]


def test_a_rule_naming_an_unknown_route_is_warned_about(client: Client) -> None:
    scenario = {"name": "typo", "rules": [{"match": {"route": "video"}, "latency": 1}]}
    r = client.put("/_emulator/scenario", json={"scenario": scenario})
    assert r.status_code == 200
    assert "'video' is not a route of the API" in str(r.json())


def test_a_file_is_rendered_once_for_the_same_request_and_seed_even_after_a_reset(
    client: Client,
) -> None:
    """The pytest plugin resets before every test: the same request under the same seed gets
    the same task id, and its file comes from the cache instead of a new render."""
    bodies = []
    for _ in range(2):
        r = create(client, "/api/v1/videos/generations", model="grok-video", prompt="a cat")
        url = finish(client, r.json()["data"]["task_id"])["output"]["video_url"]
        bodies.append((url, client.get(url.replace("http://emulator.test", "")).content))
        assert client.post("/_emulator/reset").status_code == 200
    assert bodies[0] == bodies[1]
    cache = client.app.state.emulator.media.cache
    assert len(cache) == 1


def _download(client: Client, task_id: str) -> None:
    url = client.run_to_end(task_id)["output"]["image_url"]
    assert client.get(url.replace("http://emulator.test", "")).status_code == 200


def test_a_task_that_expires_or_is_evicted_takes_its_files_out_of_the_cache() -> None:
    """No URL serves a forgotten task's files, so they do not stay in memory (a long-running
    server would otherwise fill the cache's whole budget with files nobody can download)."""
    with make_client(task_ttl_s=300, max_tasks=2) as client:
        cache = client.app.state.emulator.media.cache
        first = client.create(prompt="the first fox").json()["data"]["task_id"]
        _download(client, first)
        assert len(cache) == 1 and cache.size_bytes > 0
        client.advance(301)  # past its retention
        assert client.poll(first).status_code == 404
        assert len(cache) == 0 and cache.size_bytes == 0
        ids = [client.create(prompt=f"fox {n}").json()["data"]["task_id"] for n in range(2)]
        for task_id in ids:
            _download(client, task_id)
        assert len(cache) == 2
        client.create(prompt="a third fox")  # the store holds 2: the oldest finished one goes
        assert client.poll(ids[0]).status_code == 404
        assert len(cache) == 1


def _answers(client: Client, answers: dict[str, str]) -> None:
    scenario = {"name": "at-once", "answers": answers}
    assert client.put("/_emulator/scenario", json={"scenario": scenario}).status_code == 200


def test_a_scenario_can_make_speech_answer_its_mp3_at_once(client: Client) -> None:
    """What the AI Video Director also handles: a speech create answered with audio bytes."""
    _answers(client, {"speech": "audio"})
    before = client.get(f"/_emulator/keys/{KEY}").json()["credits"]
    r = create(client, "/api/v1/audio/speech", model="elevenlabs-v3", text="Hello there, friend")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    with av.open(io.BytesIO(r.content)) as container:
        assert container.duration == pytest.approx(1_300_000, abs=60_000)  # 19 chars / 15
    assert before - client.get(f"/_emulator/keys/{KEY}").json()["credits"] == 1
    assert create(client, "/api/v1/videos/generations", model="grok-video",
                  prompt="a cat").json()["data"]["status"] == "IN_PROGRESS"  # fmt: skip


def test_a_scenario_can_make_an_image_tool_answer_the_finished_task(client: Client) -> None:
    _answers(client, {"remove-bg": "finished"})
    r = create(client, "/api/v1/images/tools/remove-bg", model="bg-remover", image=IMAGE)
    data = r.json()["data"]
    assert data["status"] == "completed" and data["credits_consumed"] == 1
    assert client.poll(data["task_id"]).json()["data"] == data


def test_a_scenario_can_make_music_answer_the_bare_create_of_an_older_page(client: Client) -> None:
    _answers(client, {"music": "bare"})
    body = create(client, "/api/v1/audio/music", prompt="la la la").json()
    assert set(body) == {"task_id", "status", "model", "created_at"}
    assert body["status"] == "pending" and body["model"] == "chirp-v3-5"


def test_an_answer_form_a_route_does_not_have_is_refused(client: Client) -> None:
    scenario = {"name": "bad", "answers": {"speech": "finished", "videos": "audio"}}
    r = client.put("/_emulator/scenario", json={"scenario": scenario})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "answers.speech" in message and "answers" in message and "videos" in message


def test_an_image_tool_given_an_emulator_file_follows_its_size(client: Client) -> None:
    """The emulator never fetches a URL, but it knows its own files: upscaling a 1440x720
    cogview-4 image by 2 gives 2880x1440 (another URL counts as 1024x1024)."""
    r = client.create(size="1440*720")
    source = finish(client, r.json()["data"]["task_id"])["output"]["image_url"]
    r = create(client, "/api/v1/images/tools/upscale", model="image-upscale", image=source, scale=2)
    url = finish(client, r.json()["data"]["task_id"])["output"]["image_url"]
    with Image.open(io.BytesIO(client.get(url.replace("http://emulator.test", "")).content)) as im:
        assert im.size == (2880, 1440)
