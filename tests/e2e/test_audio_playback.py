"""The placeholder MP3 in a real headless Chromium: an ``<audio>`` element reports the requested
duration (the Info frame) and plays the file to its end; Web Audio decodes it to the requested
number of samples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from emulator.audio import SAMPLE_RATE, AudioPlaceholder, render_mp3
from emulator.server import LiveServer

from .browser import chromium, require

PAGE = """<!doctype html><meta charset="utf-8"><title>audio</title><link rel="icon" href="data:,">
<script>
window.load = (src) => new Promise((done, fail) => {
  const audio = new Audio();
  audio.muted = true;  // no sound card needed, and muted media may play without a gesture
  audio.preload = "auto";
  audio.onloadedmetadata = () => done(audio.duration);
  audio.onerror = () => fail(new Error(`cannot load ${src}: ${audio.error && audio.error.code}`));
  audio.src = src;
  window.audio = audio;
});
window.playToEnd = async () => {
  const audio = window.audio;
  audio.playbackRate = 16;
  const ended = new Promise((done) => { audio.onended = done; });
  await audio.play();  // rejects if the browser cannot play it
  const started = audio.currentTime;
  await ended;
  return {started, ended: audio.ended, currentTime: audio.currentTime, error: audio.error};
};
window.decode = async (src) => {
  const body = await fetch(src).then((r) => r.arrayBuffer());
  const buffer = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(body);
  return {length: buffer.length, sampleRate: buffer.sampleRate, channels: buffer.numberOfChannels};
};
</script>
"""


def _page(_: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def _mp3(request: Request) -> Response:
    kind, duration = request.path_params["kind"], float(request.path_params["duration"])
    body = render_mp3(AudioPlaceholder(duration, seed=5, kind=kind, title="e2e"))
    return Response(body, media_type="audio/mpeg")


@pytest.fixture(scope="module")
def audio_server() -> Iterator[LiveServer]:
    app = Starlette(
        routes=[Route("/", _page), Route("/audio/{kind}/{duration}.mp3", _mp3)],
    )
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def audio_browser() -> Iterator[Any]:
    require()
    with chromium() as context:
        yield context


@pytest.fixture
def audio_page(audio_browser: Any, audio_server: LiveServer) -> Iterator[Any]:
    page = audio_browser.new_page()
    errors: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", console)
    page.set_default_timeout(10_000)
    page.goto(f"{audio_server.url}/")
    yield page
    page.close()
    assert errors == [], errors


@pytest.mark.parametrize(("kind", "duration"), [("speech", 3.4), ("music", 30.0)])
def test_chromium_reports_the_duration_and_plays_to_the_end(
    audio_page: Any, kind: str, duration: float
) -> None:
    src = f"/audio/{kind}/{duration}.mp3"
    reported = audio_page.evaluate("(src) => window.load(src)", src)
    assert reported == pytest.approx(duration, abs=0.1)
    played = audio_page.evaluate("() => window.playToEnd()")
    assert played["ended"] is True
    assert played["error"] is None
    assert played["currentTime"] == pytest.approx(duration, abs=0.1)


@pytest.mark.parametrize(("kind", "duration"), [("speech", 3.4), ("music", 30.0)])
def test_web_audio_decodes_the_requested_samples(
    audio_page: Any, kind: str, duration: float
) -> None:
    decoded = audio_page.evaluate("(src) => window.decode(src)", f"/audio/{kind}/{duration}.mp3")
    assert decoded["sampleRate"] == SAMPLE_RATE
    assert decoded["channels"] == 1
    assert abs(decoded["length"] - round(duration * SAMPLE_RATE)) <= 1152
