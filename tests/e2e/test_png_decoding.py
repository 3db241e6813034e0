"""Chromium decodes a placeholder PNG to the picture that was drawn: the renderer joins zlib
segments and frames the PNG itself (``emulator/images.py``), so a browser's decoder reads it
here as Pillow's does in ``tests/test_images.py``."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest

from emulator import labels
from emulator.images import Placeholder, render_png

#: a data: URL image drawn on a canvas, and the CRC-32 of its RGBA pixels (zlib.crc32's; the
#: page, about:blank, is no secure context, so it has no crypto.subtle)
DECODE = """async (src) => {
  const img = new Image();
  await new Promise((done, fail) => {
    img.onload = done;
    img.onerror = () => fail(new Error("the PNG did not decode"));
    img.src = src;
  });
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const table = Array.from({length: 256}, (_, n) => {
    for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
    return n >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of pixels) crc = table[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return {width: canvas.width, height: canvas.height, crc32: (crc ^ 0xffffffff) >>> 0};
}"""


@pytest.mark.parametrize(
    ("width", "height"), [(1024, 1024), (1440, 720), (3136, 1344), (333, 77), (1, 1)]
)
def test_chromium_sees_the_drawn_picture(browser: Any, width: int, height: int) -> None:
    p = Placeholder(width, height, 11, "cogview-4", "a red fox in the snow", "n1a2b3_cv4", 1, 2)
    body = render_png(p, max_pixels=width * height)
    label = labels.Label(p.model, p.prompt, p.task_id, "image 2/2")
    drawn = labels.draw_placeholder(width, height, label)
    drawn.putpalette(labels.palette(p.seed))
    expected = zlib.crc32(drawn.convert("RGBA").tobytes())
    page = browser.new_page()
    try:
        seen = page.evaluate(DECODE, "data:image/png;base64," + base64.b64encode(body).decode())
    finally:
        page.close()
    assert seen == {"width": width, "height": height, "crc32": expected}
