"""Replays the documentation's example requests (fixtures/examples) against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import Client

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "examples"
CREATE_EXAMPLES = sorted(
    p
    for p in EXAMPLES.glob("*.json")
    if "request" in json.loads(p.read_text())
    and json.loads(p.read_text())["request"]["method"] == "POST"
)


def shape(value):
    """The JSON shape of a value: same keys and types, values ignored."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def test_there_is_one_example_per_family() -> None:
    assert len(CREATE_EXAMPLES) == 8


@pytest.mark.parametrize("path", CREATE_EXAMPLES, ids=lambda p: p.stem)
def test_documented_example_gets_the_documented_response_shape(client: Client, path: Path) -> None:
    example = json.loads(path.read_text())
    request, expected = example["request"], example["response"]
    r = client.post(request["path"], json=request["body"], headers=request["headers"])
    assert r.status_code == expected["status"]
    body = r.json()
    assert shape(body) == shape(expected["body"])
    assert body["code"] == 200 and body["message"] == "success"
    assert body["data"]["status"] == expected["body"]["data"]["status"]
    node_tag = re.fullmatch(r"(n\d+)xxxx_(\w+)", expected["body"]["data"]["task_id"])
    assert node_tag is not None
    assert re.fullmatch(rf"{node_tag[1]}[0-9a-f]{{16}}_{node_tag[2]}", body["data"]["task_id"])


def test_documented_poll_call_of_an_unknown_task_answers_the_envelope(client: Client) -> None:
    example = json.loads((EXAMPLES / "poll.json").read_text())["request"]
    r = client.get(example["path"], headers=example["headers"])
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"code", "message", "type"}


def test_documented_401(client: Client) -> None:
    expected = json.loads((EXAMPLES / "error-401.json").read_text())["response"]
    with_bad_key = {"Authorization": "Bearer aio_revoked"}
    from .conftest import make_client

    with make_client(only_known_keys=True) as c:
        r = c.post("/api/v1/images/generations", json={"model": "cogview-4", "prompt": "abc"},
                   headers=with_bad_key)  # fmt: skip
    assert r.status_code == expected["status"]
    assert r.json() == expected["body"]
