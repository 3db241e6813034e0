"""The emulated image API end to end, black-box over HTTP (in-process)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from emulator import api
from emulator.api import MAX_BASE_URLS
from emulator.catalogue import Catalogue

from .conftest import KEY, Client

CATALOGUE = Catalogue.load()
COGVIEW_SIZES = CATALOGUE.models["cogview-4"].fields["size"].values
TASK_ID_TAGS = {
    "cogview-4": (48, "cv4"),
    "grok-imagine": (31, "grok"),
    "flux-2": (41, "flux2"),
    "gpt-image-1.5-official": (42, "gptimg"),
    "imagen-4": (47, "imagen4"),
    "kling-image-o1": (49, "kio1"),
    "ideogram-v3": (63, "ideogram"),
    "seedream-4-5": (30, "seed"),
}
EXTRA_REQUIRED = {
    "seedream/4.5-edit": {"image_urls": ["https://example.com/a.png"]},
}


def cycle(client: Client, **body) -> tuple[dict, list[Image.Image]]:
    """Create, run to the end, download every image."""
    r = client.create(**body)
    assert r.status_code == 200, r.text
    data = client.run_to_end(r.json()["data"]["task_id"])
    assert data["status"] == "completed"
    images = []
    for url in data["output"]["image_urls"]:
        got = client.get(url)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/png"
        assert int(got.headers["content-length"]) == len(got.content)
        images.append(Image.open(io.BytesIO(got.content)))
    return data, images


def test_create_answers_the_documented_envelope(client: Client) -> None:
    r = client.create()
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 200 and body["message"] == "success"
    assert set(body["data"]) == {"task_id", "status"}
    assert body["data"]["status"] == "IN_PROGRESS"
    assert re.fullmatch(r"n48[0-9a-f]{16}_cv4", body["data"]["task_id"])


@pytest.mark.parametrize("size", COGVIEW_SIZES)
def test_cogview_every_size_gives_a_png_of_exactly_that_size(client: Client, size: str) -> None:
    data, images = cycle(client, size=size)
    width, height = (int(v) for v in size.split("*"))
    assert images[0].size == (width, height)
    assert images[0].format == "PNG"
    assert data["credits_consumed"] == 4


@pytest.mark.parametrize("model_id", CATALOGUE.names(CATALOGUE.routes["images"]))
def test_every_model_completes_a_full_cycle(client: Client, model_id: str) -> None:
    model = CATALOGUE.resolve(model_id)
    assert model is not None
    body = {"model": model_id, "prompt": "a lighthouse at dusk", **EXTRA_REQUIRED.get(model.id, {})}
    if model.id == "grok-imagine/upscale":
        source = client.create(model="grok-imagine/text-to-image").json()["data"]["task_id"]
        body["task_id"] = source
    r = client.create(**body)
    assert r.status_code == 200, r.text
    task_id = r.json()["data"]["task_id"]
    node, tag = TASK_ID_TAGS[model.family]
    assert re.fullmatch(rf"n{node}[0-9a-f]{{16}}_{tag}", task_id)
    data = client.run_to_end(task_id)
    assert data["model"] == model.id
    image = Image.open(io.BytesIO(client.get(data["output"]["image_url"]).content))
    assert image.size == model.pixel_size(client.app.state.emulator.validate(body).params)


@pytest.mark.parametrize(
    ("body", "size"),
    [
        pytest.param({"model": "flux-2", "aspect_ratio": "16:9"}, (1360, 768), id="flux-16:9-1K"),
        pytest.param(
            {"model": "flux-2", "aspect_ratio": "16:9", "resolution": "2K"}, (2720, 1536), id="2K"
        ),
        pytest.param({"model": "kling-image-o1", "aspect_ratio": "auto"}, (1024, 1024), id="auto"),
        pytest.param({"model": "imagen4", "aspect_ratio": "3:4"}, (880, 1184), id="imagen-3:4"),
        pytest.param({"model": "grok-imagine"}, (1024, 1024), id="grok-fixed"),
    ],
)
def test_aspect_ratio_models_render_about_one_megapixel(client: Client, body, size) -> None:
    _, images = cycle(client, **body)
    assert images[0].size == size


def test_num_images_gives_that_many_images_and_multiplies_credits(client: Client) -> None:
    data, images = cycle(client, model="kling-image-o1", num_images=3, type="ai-multi-shot")
    assert len(images) == 3
    assert data["output"]["image_url"] == data["output"]["image_urls"][0]
    assert data["credits_consumed"] == 16 * 3
    account = client.get(f"/_emulator/keys/{KEY}").json()
    assert account["spent"] == 48


def test_task_body_has_the_contract_fields_and_progress_rises(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    seen = []
    for _ in range(20):
        data = client.poll(task_id).json()["data"]
        assert set(data) == {
            "task_id", "model", "status", "progress", "created_at",
            "updated_at", "output", "error", "credits_consumed",
        }  # fmt: skip
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["created_at"])
        seen.append((data["status"], data["progress"]))
        client.advance(0.5)
    progress = [p for _, p in seen]
    assert progress == sorted(progress)
    assert seen[0] == ("IN_PROGRESS", 0)
    assert seen[-1] == ("completed", 100)
    assert {s for s, _ in seen} == {"IN_PROGRESS", "completed"}


def test_default_timing_is_within_the_documented_range_and_reproducible() -> None:
    from .conftest import make_client

    def durations(seed: int) -> list[float]:
        out = []
        with make_client(seed=seed) as c:
            for _ in range(10):
                tid = c.create().json()["data"]["task_id"]
                out.append(c.app.state.emulator.tasks.get(tid).script.duration_s)
        return out

    first = durations(7)
    assert first == durations(7)
    assert first != durations(8)
    assert all(3 <= d <= 8 for d in first)


def test_tasks_are_private_to_their_key(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    r = client.poll(task_id, key="aio_someone_else")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found"


def test_image_urls_use_the_host_the_client_used_or_public_url() -> None:
    from .conftest import make_client

    with make_client() as c:
        data = c.run_to_end(c.create().json()["data"]["task_id"])
        assert data["output"]["image_url"].startswith("http://emulator.test/files/")
    with make_client(public_url="https://img.example.org/base") as c:
        data = c.run_to_end(c.create().json()["data"]["task_id"])
        assert data["output"]["image_url"].startswith("https://img.example.org/base/files/")


def test_each_poll_of_a_finished_task_names_its_files_under_its_own_host(client: Client) -> None:
    """The same task polled through two host names (a proxy, a container's name) answers
    each with URLs under its own, however often each is asked."""
    task_id = client.create().json()["data"]["task_id"]
    client.run_to_end(task_id)
    for host in ("emulator.test", "proxy.test:8080", "emulator.test", "proxy.test:8080"):
        headers = {"Authorization": f"Bearer {KEY}", "Host": host}
        r = client.get(f"/api/v1/tasks/{task_id}", headers=headers)
        urls = r.json()["data"]["output"]["image_urls"]
        assert urls == [f"http://{host}/files/{task_id}/0.png"]


def test_a_client_inventing_host_names_gets_each_its_own_urls(client: Client) -> None:
    """Base URLs are shared per host up to a bound; hosts past it are answered all the same."""
    task_id = client.create().json()["data"]["task_id"]
    client.run_to_end(task_id)
    for n in range(MAX_BASE_URLS + 10):
        host = f"h{n}.test"
        r = client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {KEY}",
                                                             "Host": host})  # fmt: skip
        assert r.json()["data"]["output"]["image_url"] == f"http://{host}/files/{task_id}/0.png"
    assert len(api._BASE_URLS) <= MAX_BASE_URLS


def test_image_download_is_deterministic_with_etag_and_head(client: Client) -> None:
    data = client.run_to_end(client.create().json()["data"]["task_id"])
    url = data["output"]["image_url"]
    first, second = client.get(url), client.get(url)
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["content-type"] == "image/png"
    cached = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert cached.status_code == 304


def test_same_seed_same_task_ids_and_bytes() -> None:
    from .conftest import make_client

    def run() -> tuple[str, bytes]:
        with make_client(seed=42) as c:
            data = c.run_to_end(c.create(prompt="same prompt").json()["data"]["task_id"])
            return data["task_id"], c.get(data["output"]["image_url"]).content

    assert run() == run()


def test_image_of_an_unfinished_or_unknown_task_is_404(client: Client) -> None:
    task_id = client.create().json()["data"]["task_id"]
    for path in (f"/files/{task_id}/0.png", f"/files/{task_id}/1.png", "/files/nope/0.png",
                 f"/files/{task_id}/../0.png", f"/files/{task_id}/0.jpg"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == 404


def test_unknown_fields_are_accepted_and_journaled(client: Client) -> None:
    r = client.create(something_new=True)
    assert r.status_code == 200
    entry = client.get("/_emulator/requests").json()["requests"][-1]
    assert entry["body"]["something_new"] is True


def test_upscale_needs_an_earlier_task_of_the_same_key(client: Client) -> None:
    r = client.create(model="grok-imagine/upscale", task_id="n31deadbeef_grok")
    assert r.status_code == 404  # a well-formed body naming a task there is not
    assert "task_id" in r.json()["error"]["message"]
