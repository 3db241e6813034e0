"""The baseline: the same 100 cycles against a plain respx mock with static answers."""

import struct
import zlib

import pytest
from suite_client import generate_image

API = "https://apiin.one"
TASK_ID = "n48c0e1d2b3a4f5e6d7_cv4"


def _png(width: int, height: int) -> bytes:
    """A flat grey PNG of the size the emulator would render."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * ((width + 1) * height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", b"\x80\x80\x80")
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


PNG = _png(1024, 1024)
CREATED = {"code": 200, "message": "success", "data": {"task_id": TASK_ID, "status": "IN_PROGRESS"}}
IMAGE_URL = f"{API}/files/{TASK_ID}/0.png"
COMPLETED = {
    "code": 200,
    "message": "success",
    "data": {
        "task_id": TASK_ID,
        "model": "cogview-4",
        "status": "completed",
        "progress": 100,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:06Z",
        "output": {"image_url": IMAGE_URL, "image_urls": [IMAGE_URL]},
        "error": None,
        "credits_consumed": 4,
    },
}


@pytest.mark.parametrize("n", range(100))
def test_cycle(client, respx_mock, n):
    respx_mock.post(f"{API}/api/v1/images/generations").respond(json=CREATED)
    respx_mock.get(f"{API}/api/v1/tasks/{TASK_ID}").respond(json=COMPLETED)
    respx_mock.get(IMAGE_URL).respond(content=PNG, headers={"Content-Type": "image/png"})
    png = generate_image(client, API, "aio_bench", f"a red fox, take {n}")
    assert png.startswith(b"\x89PNG")
