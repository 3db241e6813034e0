"""Both fixtures serve every model of every family: a test creates a task with httpx against
the handle's URL, moves the virtual clock, polls and downloads its first file (decoded), and
the credits balance."""

from __future__ import annotations

import json

import pytest

from emulator.catalogue import Catalogue

from ..test_api import EXTRA_REQUIRED
from ..test_families import BODIES

pytest_plugins = ["pytester"]

CATALOGUE = Catalogue.load()
#: (path, body, output field) of one create per model of every create route
CASES = [
    (
        route.path,
        {
            "model": model.id,
            **(
                BODIES.get(model.id)
                or {"prompt": "a lighthouse at dusk", **EXTRA_REQUIRED.get(model.id, {})}
            ),
        },
        route.output.url_field,
    )
    for route in CATALOGUE.routes.values()
    if route.served_by is None
    for model in CATALOGUE.route_models(route)
    if model.id != "grok-imagine/upscale"  # needs an earlier task: tests/test_api.py
]

SUITE = """
import io
import json

import av
import httpx
import pytest
from PIL import Image

CASES = json.loads(CASES_JSON)


@pytest.mark.parametrize(("path", "body", "field"), CASES, ids=[c[1]["model"] for c in CASES])
def test_create_poll_download(FIXTURE, path, body, field):
    handle = FIXTURE
    with httpx.Client(base_url=handle.url, headers=handle.headers) as client:
        created = client.post(path, json=body)
        assert created.status_code == 200, created.text
        task_id = created.json()["data"]["task_id"]
        handle.advance(600)
        data = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert data["status"] == "completed"
        file = client.get(data["output"][field])
        assert file.status_code == 200
        if field == "image_url":
            assert min(Image.open(io.BytesIO(file.content)).size) >= 512
        else:
            with av.open(io.BytesIO(file.content)) as container:
                assert container.duration > 0
        part = client.get(data["output"][field], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == file.content[:10]
    assert handle.credits() == 1_000_000 - data["credits_consumed"]
"""


@pytest.mark.parametrize("fixture", ["aio_emulator", "aio_emulator_respx"])
def test_every_model_of_every_family_through_both_fixtures(
    suite: pytest.Pytester, fixture: str
) -> None:
    code = SUITE.replace("FIXTURE", fixture).replace("CASES_JSON", repr(json.dumps(CASES)))
    suite.makepyfile(test_families=code)
    suite.runpytest().assert_outcomes(passed=len(CASES))
    assert {c[1]["model"] for c in CASES} >= {"kling-3", "elevenlabs-v3", "chirp-v5", "face-swap"}
