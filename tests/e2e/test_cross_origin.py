"""A browser app on another origin, in a real headless Chromium: it calls the emulated API with
``fetch()`` as public browser apps call the real one (preflighted, every poll included); a
hostile page on another origin cannot change the emulator with a request that needs no
preflight."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

from .browser import chromium, require

KEY = "aio_browser_app"

APP_PAGE = """<!doctype html><meta charset="utf-8"><title>app</title>
<img id="result" alt="result">
<script>
window.run = async (api) => {
  const headers = {"Authorization": "Bearer KEY", "Content-Type": "application/json"};
  const created = await fetch(api + "/api/v1/images/generations", {
    method: "POST", headers, body: JSON.stringify({model: "cogview-4", prompt: "a fox"}),
  }).then((r) => r.json());
  let data;
  for (let i = 0; i < 20; i++) {
    data = (await fetch(api + "/api/v1/tasks/" + created.data.task_id, {headers})
      .then((r) => r.json())).data;
    if (data.status === "completed") break;
  }
  const img = document.getElementById("result");
  await new Promise((done, fail) => { img.onload = done; img.onerror = fail;
                                     img.src = data.output.image_url; });
  const missing = await fetch(api + "/api/v1/tasks/n48nope_cv4", {headers});
  return {status: data.status, width: img.naturalWidth,
          notFound: missing.status, message: (await missing.json()).error.message};
};
</script>
""".replace("KEY", KEY)

#: what the public AI Video Director does against https://apiin.one/api/v1 (shared/contract-more.md,
#: "What real public clients send"): speech per dialogue line, then one video per scene with
#: duration = floor(total / scenes), polling /tasks/{id} until a terminal word, reading
#: data.output.video_url; here the results also go into <audio> and <video> elements
DIRECTOR_PAGE = """<!doctype html><meta charset="utf-8"><title>director</title>
<script>
const DONE = ["COMPLETED", "completed", "SUCCESS", "success"];
const FAILED = ["FAILED", "failed", "ERROR", "error"];
window.direct = async (api, scenes, lines) => {
  const headers = {"Authorization": "Bearer KEY", "Content-Type": "application/json"};
  const call = async (path, body) => {
    const r = await fetch(api + path, body === undefined ? {headers}
                          : {method: "POST", headers, body: JSON.stringify(body)});
    if (r.headers.get("content-type").includes("audio")) return {blob: await r.blob()};
    const json = await r.json();
    if (!r.ok) throw new Error((json.error && json.error.message) || ("API error " + r.status));
    return json;
  };
  const wait = async (id) => {
    for (let i = 0; i < 50; i++) {
      const data = (await call("/tasks/" + id)).data;
      const status = data.status;
      if (DONE.includes(status)) return data;
      if (FAILED.includes(status)) throw new Error(data.error);
    }
    throw new Error("timeout");
  };
  const play = (tag, url) => new Promise((done, fail) => {
    const el = document.createElement(tag);
    el.muted = true; el.preload = "auto";
    el.onloadedmetadata = () => done({width: el.videoWidth, height: el.videoHeight,
                                      duration: el.duration, url});
    el.onerror = () => fail(new Error("cannot play " + url));
    el.src = url; document.body.appendChild(el);
  });
  const speech = [];
  for (const line of lines) {
    const created = await call("/audio/speech", {model: line.model, text: line.text,
      voice_id: line.voice, speed: 1.0, stability: 0.5});
    if (created.blob) continue;
    const data = await wait(created.data.task_id);
    speech.push(await play("audio", data.output.audio_url));
  }
  const videos = [];
  const duration = Math.floor(10 / scenes.length);
  for (const scene of scenes) {
    const body = {model: scene.model, prompt: scene.prompt, duration,
                  aspect_ratio: scene.aspect, sound: false};
    if (scene.model === "kling-3") body.mode = scene.mode;
    else { body.resolution = scene.resolution; body.generateAudio = false; }
    const created = await call("/videos/generations", body);
    if (!created.data || !created.data.task_id) continue;
    const data = await wait(created.data.task_id);
    const url = (data.output && data.output.video_url) || data.video_url;
    videos.push(await play("video", url));
  }
  return {speech, videos, duration};
};
</script>
""".replace("KEY", KEY)

HOSTILE_PAGE = """<!doctype html><meta charset="utf-8"><title>hostile</title>
<script>
window.attack = async (api) => {
  const tries = [
    fetch(api + "/_emulator/reset", {method: "POST", mode: "no-cors",
                                     headers: {"Content-Type": "text/plain"}, body: "x"}),
    fetch(api + "/_emulator/reset", {method: "POST", mode: "no-cors"}),
    fetch(api + "/_emulator/keys/aio_browser_app", {method: "PUT", mode: "no-cors",
                                                    body: '{"credits": 0}'}),
  ];
  await Promise.allSettled(tries);
  try {
    await fetch(api + "/_emulator/requests");  // reading needs CORS, which the API never sends
    return "read";
  } catch (e) {
    return "blocked";
  }
};
</script>
"""


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    app = create_app(Config(seed=3, clock="virtual", scenario="instant"))
    with LiveServer(app) as live:
        yield f"http://localhost:{live.port}"  # another host name and port than the pages'


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    """The pages' own origin: a plain static server on 127.0.0.1."""
    bodies = {"/app.html": APP_PAGE, "/hostile.html": HOSTILE_PAGE, "/director.html": DIRECTOR_PAGE}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require()
    with chromium() as context:
        yield context


def test_a_page_on_another_origin_runs_create_poll_and_download(
    browser: Any, pages: str, emulator_url: str
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{pages}/app.html")
        result = page.evaluate("api => window.run(api)", emulator_url)
    finally:
        page.close()
    assert result["status"] == "completed" and result["width"] == 1024
    assert result["notFound"] == 404 and result["message"].startswith("Task not found")


def test_the_video_directors_flow_runs_and_its_videos_play(
    browser: Any, pages: str, emulator_url: str
) -> None:
    """Four scenes of a 10 s story: each video is 2 s (kling-3 gets 2 where its docs say at
    least 3, seedance an integer 2 where they say "4" | "8" | "12": lenient durations)."""
    scenes = [
        {"model": "kling-3", "prompt": "a harbour at dawn", "aspect": "16:9", "mode": "std"},
        {"model": "kling-3", "prompt": "gulls over the pier", "aspect": "9:16", "mode": "pro"},
        {"model": "seedance-1-5-pro", "prompt": "a boat", "aspect": "16:9", "resolution": "480p"},
        {"model": "seedance-1-5-pro", "prompt": "a storm", "aspect": "1:1", "resolution": "720p"},
    ]
    lines = [
        {"model": "elevenlabs-multilingual-v2", "text": "Once upon a time.", "voice": "v1"},
        {"model": "elevenlabs-turbo-v2-5", "text": "There was a harbour " * 3, "voice": "v2"},
    ]
    page = browser.new_page()
    try:
        page.goto(f"{pages}/director.html")
        result = page.evaluate("([api, s, l]) => window.direct(api + '/api/v1', s, l)",
                               [emulator_url, scenes, lines])  # fmt: skip
    finally:
        page.close()
    assert result["duration"] == 2
    sizes = [(v["width"], v["height"]) for v in result["videos"]]
    assert sizes == [(1280, 720), (1080, 1920), (854, 480), (720, 720)]
    assert all(abs(v["duration"] - 2) < 0.1 for v in result["videos"])
    # speech lasts max(1, chars / 15) s: 17 characters -> 1.1 s, 60 -> 4.0 s
    assert [a["duration"] for a in result["speech"]] == [pytest.approx(1.1, abs=0.05),
                                                         pytest.approx(4.0, abs=0.05)]  # fmt: skip


def test_a_hostile_page_cannot_reset_or_read_the_emulator(
    browser: Any, pages: str, emulator_url: str
) -> None:
    with httpx.Client(base_url=emulator_url) as api:
        api.post("/_emulator/reset").raise_for_status()
        headers = {"Authorization": f"Bearer {KEY}"}
        task_id = api.post(
            "/api/v1/images/generations",
            json={"model": "cogview-4", "prompt": "kept"},
            headers=headers,
        ).json()["data"]["task_id"]
        page = browser.new_page()
        try:
            page.goto(f"{pages}/hostile.html")
            assert page.evaluate("api => window.attack(api)", emulator_url) == "blocked"
        finally:
            page.close()
        assert api.get(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 200
        assert api.get(f"/_emulator/keys/{KEY}").json()["credits"] > 0
