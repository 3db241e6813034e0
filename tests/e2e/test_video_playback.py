"""Placeholder MP4s in a real headless Chromium: a ``<video>`` on a page loads one from a live
server (served as ``video/mp4``, without range support, as a naive file route would), reports
the rendered size and duration, plays it muted, and runs to the end."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from emulator.server import LiveServer
from emulator.video import VideoPlaceholder, render_mp4

# (width, height, duration_s, audio)
CASES = [(1280, 720, 5, False), (720, 1280, 3, True), (854, 480, 2.3, True)]

PAGE = """<!doctype html><meta charset="utf-8"><title>video</title><body>
<script>
window.probe = async (src, type) => {
  const v = document.createElement("video");
  v.muted = true;
  v.preload = "auto";
  v.playsInline = true;
  document.body.append(v);
  const failed = () => new Error("media error " + (v.error && (v.error.code + " " + v.error.message)));
  await new Promise((ok, fail) => {
    v.onloadedmetadata = ok;
    v.onerror = () => fail(failed());
    v.src = src;
  });
  const seen = {canPlay: v.canPlayType(type), width: v.videoWidth, height: v.videoHeight,
                duration: v.duration};
  const start = v.currentTime;
  await v.play();
  await new Promise((ok) => setTimeout(ok, 400));
  seen.advanced = v.currentTime - start;
  v.playbackRate = 16;
  await new Promise((ok, fail) => {
    if (v.ended) ok();
    v.onended = ok;
    v.onerror = () => fail(failed());
  });
  seen.ended = v.ended;
  seen.final = v.currentTime;
  seen.frames = v.getVideoPlaybackQuality().totalVideoFrames;
  seen.videoBytes = v.webkitVideoDecodedByteCount;
  seen.audioBytes = v.webkitAudioDecodedByteCount;
  return seen;
};
</script>
"""


def codecs(body: bytes, audio: bool) -> str:
    """The RFC 6381 codecs parameter of the file: avc1.PPCCLL from its avcC box, and AAC-LC."""
    at = body.index(b"avcC") + 4
    profile, compat, level = struct.unpack_from(">xBBB", body, at)
    video = f"avc1.{profile:02X}{compat:02X}{level:02X}"
    return f"{video}, mp4a.40.2" if audio else video


@pytest.fixture(scope="module")
def videos() -> Iterator[tuple[str, dict[str, bytes]]]:
    bodies = {}
    for w, h, d, a in CASES:
        p = VideoPlaceholder(w, h, d, seed=11, model="veo3", prompt="a fox", task_id="t1", audio=a)
        bodies[f"/v/{w}x{h}-{d}{'-audio' if a else ''}.mp4"] = render_mp4(p)

    async def video(request: Request) -> Response:
        return Response(bodies[request.url.path], media_type="video/mp4")

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [Route("/page", page), Route("/favicon.ico", no_icon)]
    app = Starlette(routes=[*routes, *(Route(path, video) for path in bodies)])
    with LiveServer(app) as live:
        yield live.url, bodies


@pytest.mark.parametrize(("width", "height", "duration_s", "audio"), CASES)
def test_chromium_plays_the_placeholder(
    browser: Any,
    videos: tuple[str, dict[str, bytes]],
    width: int,
    height: int,
    duration_s: float,
    audio: bool,
) -> None:
    url, bodies = videos
    path = f"/v/{width}x{height}-{duration_s}{'-audio' if audio else ''}.mp4"
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.set_default_timeout(10_000)
        page.goto(f"{url}/page")
        kind = f'video/mp4; codecs="{codecs(bodies[path], audio)}"'
        seen = page.evaluate("([src, type]) => window.probe(src, type)", [path, kind])
    finally:
        page.close()
    assert errors == []
    assert seen["canPlay"] == "probably", kind
    assert (seen["width"], seen["height"]) == (width, height)
    assert seen["duration"] == pytest.approx(duration_s, abs=0.1)
    assert seen["advanced"] > 0.1  # it plays in real time...
    assert seen["ended"] is True  # ... and to the end
    assert seen["final"] == pytest.approx(duration_s, abs=0.1)
    assert seen["frames"] > 0 and seen["videoBytes"] > 0
    assert (seen["audioBytes"] > 0) is audio
