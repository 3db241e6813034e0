"""``aio-emulator record``: a proxy in front of a second emulator, fixtures, and the replay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from emulator.app import create_app
from emulator.cli import main
from emulator.config import Config
from emulator.record import RecordingProxy, build_scenario, load_exchanges
from emulator.scenarios import loads
from emulator.server import LiveServer

KEY = "aio_record_secret_key"
UPSTREAM = """
name: upstream
status_words: {succeeded: DONE, failed: FAILED}
defaults: {task: {queued: 0, running: 0.3}}
rules:
  - match: {endpoint: create, prompt_contains: busy}
    error: {status: 503, message: "Service busy"}
  - match: {endpoint: create, prompt_contains: please fail}
    task: {queued: 0, running: 0.3, outcome: fail, error: "Content policy violation"}
"""


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, Path]]:
    scenario = tmp_path / "upstream.yaml"
    scenario.write_text(UPSTREAM)
    out = tmp_path / "rec"
    upstream = LiveServer(create_app(Config(seed=5, scenario=str(scenario)))).start()
    proxy = LiveServer(RecordingProxy(upstream.url, out)).start()
    try:
        yield upstream, proxy, out
    finally:
        proxy.stop()
        upstream.stop()


def _drive(proxy: LiveServer) -> dict[str, dict]:
    """A client session through the proxy: 3 tasks (one fails), an image, three errors."""
    ended: dict[str, dict] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=10) as client:
        ids = []
        for prompt in ("a red fox", "a blue bird", "please fail now"):
            r = client.post(
                "/api/v1/images/generations", json={"model": "cogview-4", "prompt": prompt}
            )
            assert r.status_code == 200, r.text
            ids.append(r.json()["data"]["task_id"])
        r = client.post("/api/v1/images/generations", json={"model": "nope", "prompt": "abc"})
        assert r.status_code == 400
        r = client.post("/api/v1/images/generations", json={"model": "cogview-4", "prompt": "busy"})
        assert r.status_code == 503
        r = client.get("/api/v1/tasks/x", headers={"Authorization": "Bearer bad"})
        assert r.status_code == 401
        deadline = time.monotonic() + 10
        while len(ended) < len(ids) and time.monotonic() < deadline:
            for task_id in ids:
                if task_id not in ended:
                    data = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
                    if data["status"] in ("DONE", "FAILED"):
                        ended[task_id] = data
            time.sleep(0.05)
        done = next(d for d in ended.values() if d["status"] == "DONE")
        image = httpx.get(done["output"]["image_url"], timeout=10)  # direct, like a CDN
        assert image.status_code == 200
        r = client.get(f"/files/{done['task_id']}/0.png")  # and once through the proxy
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return ended


def test_proxy_forwards_and_stores_each_exchange_without_credentials(recording) -> None:
    upstream, proxy, out = recording
    ended = _drive(proxy)
    assert sorted(d["status"] for d in ended.values()) == ["DONE", "DONE", "FAILED"]
    files = sorted(out.glob("*.json"))
    exchanges = load_exchanges(out)
    direct = 1  # the image fetched from the upstream's URL, not through the proxy
    assert len(files) == len(exchanges) == len(upstream.app.state.emulator.journal) - direct
    for path in files:
        text = path.read_text()
        assert KEY not in text and "Bearer" not in text
    first = json.loads(files[0].read_text())
    assert first["request"]["method"] == "POST"
    assert first["request"]["body"] == {"model": "cogview-4", "prompt": "a red fox"}
    assert first["response"]["status"] == 200
    assert first["response"]["body"]["data"]["status"] == "IN_PROGRESS"
    assert first["timing"]["seconds"] >= 0 and first["timing"]["started_at"].endswith("Z")
    assert len(first["request"]["key_fingerprint"]) == 12
    png = next(e for e in exchanges if e["request"]["path"].endswith(".png"))
    assert png["response"]["body_sha256"] and png["response"]["body_bytes"] > 0


def test_built_scenario_replays_words_timing_and_failures(recording, tmp_path: Path) -> None:
    _, proxy, out = recording
    _drive(proxy)
    data, text = build_scenario(out)
    loads(text)  # valid
    assert data["status_words"] == {"succeeded": "DONE", "failed": "FAILED"}
    rules = {rule["name"]: rule for rule in data["rules"]}
    failures = rules["observed cogview-4 failures"]
    assert failures["match"]["probability"] == pytest.approx(1 / 3, abs=0.001)
    assert failures["task"]["error"] == "Content policy violation"
    running = rules["observed cogview-4 timing"]["task"]["running"]
    low, high = running["uniform"] if isinstance(running, dict) else (running, running)
    assert 0.1 <= low <= high <= 1.5  # the upstream ran 0.3 s
    outage = rules["observed 503 service_unavailable"]
    assert outage["match"]["probability"] == 0.2  # 1 of 5 creates
    assert outage["error"] == {
        "status": 503,
        "message": "Service busy",
        "type": "service_unavailable",
    }
    assert "observed 400 invalid_request_error" not in rules  # a client error: not replayed
    assert "# Client errors seen" in text and "400 invalid_request_error" in text
    assert "&id" not in text

    # the replay: an emulator serving the built scenario answers like the upstream did
    path = tmp_path / "replay.yaml"
    path.write_text(text)
    auth = {"Authorization": f"Bearer {KEY}"}
    with (
        LiveServer(create_app(Config(seed=1, scenario=str(path)))) as replay,
        httpx.Client(base_url=replay.url, headers=auth, timeout=10) as c,
    ):
        statuses = set()
        for _ in range(12):
            r = c.post("/api/v1/images/generations", json={"model": "cogview-4", "prompt": "abc"})
            statuses.add(r.status_code)
            if r.status_code == 200:
                task_id = r.json()["data"]["task_id"]
                assert c.get(f"/api/v1/tasks/{task_id}").json()["data"]["status"] == "IN_PROGRESS"
                time.sleep(high + 0.2)  # past the longest recorded duration
                data = c.get(f"/api/v1/tasks/{task_id}").json()["data"]
                assert data["status"] in ("DONE", "FAILED")
                break
        assert 200 in statuses


def test_cli_build_scenario_prints_loadable_yaml(
    recording, capsys: pytest.CaptureFixture[str]
) -> None:
    _, proxy, out = recording
    _drive(proxy)
    assert main(["record", "--build-scenario", str(out)]) == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["status_words"]["succeeded"] == "DONE"
    loads(printed)


def test_cli_record_needs_upstream_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record"]) == 2
    assert "--upstream URL and --out DIR" in capsys.readouterr().err
    assert main(["record", "--upstream", "ftp://x", "--out", "d"]) == 2


def test_unreachable_upstream_answers_502_and_is_recorded(tmp_path: Path) -> None:
    with LiveServer(RecordingProxy("http://127.0.0.1:9", tmp_path)) as proxy:
        r = httpx.get(proxy.url + "/api/v1/tasks/x", timeout=10)
    assert r.status_code == 502 and r.json()["error"]["type"] == "server_error"
    assert load_exchanges(tmp_path)[0]["response"]["status"] == 502
