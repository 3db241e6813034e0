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
    bodies = {"/app.html": APP_PAGE, "/hostile.html": HOSTILE_PAGE}

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
