"""Every bad input gets the error envelope with the right status, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.app import create_app
from emulator.config import Config

from .conftest import AUTH, KEY, Client, make_client

CREATE = "/api/v1/images/generations"
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


def assert_error(r, status: int, type_: str, *needles: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "type"}
    assert body["error"]["code"] == status
    assert body["error"]["type"] == type_
    for needle in needles:
        assert needle in body["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        pytest.param({}, "Missing API key", id="missing"),
        pytest.param({"Authorization": "Basic aio_x"}, "Bearer", id="not-bearer"),
        pytest.param({"Authorization": "Bearer sk-123"}, "aio_", id="no-prefix"),
        pytest.param({"Authorization": "Bearer "}, "Invalid API key", id="empty"),
    ],
)
def test_bad_keys_get_401(client: Client, headers, needle) -> None:
    r = client.post(CREATE, json={"model": "cogview-4", "prompt": "a cat"}, headers=headers)
    assert_error(r, 401, "authentication_error", "Invalid API key" if needle != "Missing API key"
                 else needle, needle)  # fmt: skip
    r = client.get("/api/v1/tasks/n48abc_cv4", headers=headers)
    assert r.status_code == 401


def test_only_known_keys_rejects_others_with_the_documented_message() -> None:
    with make_client(keys={"aio_known": 10}, only_known_keys=True) as c:
        r = c.create(key="aio_unknown")
        assert_error(r, 401, "authentication_error")
        assert r.json()["error"]["message"] == "Invalid API key"
        assert c.create(key="aio_known").status_code == 200


def test_keys_are_checked_on_every_request_not_only_the_first() -> None:
    """Parsed keys are remembered per header value: that must not remember a verdict."""
    with make_client(only_known_keys=True) as c:
        assert c.create(key="aio_late").status_code == 401
        assert c.put("/_emulator/keys/aio_late", json={"credits": 50}).status_code == 200
        assert c.create(key="aio_late").status_code == 200  # same header, now a known key
        for _ in range(2):
            r = c.post(CREATE, json={"model": "cogview-4", "prompt": "a cat"},
                       headers={"Authorization": "Token aio_late"})  # fmt: skip
            assert_error(r, 401, "authentication_error", "Bearer")


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        pytest.param({"prompt": "a cat"}, ["model", "is required", "cogview-4"], id="no-model"),
        pytest.param({"model": 4, "prompt": "a cat"}, ["model", "string"], id="model-type"),
        pytest.param(
            {"model": "dall-e", "prompt": "a cat"}, ["'dall-e'", "cogview-4"], id="unknown"
        ),
        pytest.param({"model": "cogview-4"}, ["prompt", "required"], id="no-prompt"),
        pytest.param(
            {"model": "cogview-4", "prompt": 12}, ["prompt", "string", "integer"], id="type"
        ),
        pytest.param({"model": "cogview-4", "prompt": "ab"}, ["prompt", "at least 3"], id="short"),
        pytest.param({"model": "cogview-4", "prompt": "x" * 1001}, ["at most 1000"], id="long"),
        pytest.param({"model": "flux-2", "prompt": "x" * 5001}, ["at most 5000"], id="long-5000"),
        pytest.param(
            {"model": "cogview-4", "prompt": "a cat", "size": "1024x1024"},
            ["size", "'1024x1024'", "1024*1024", "720*1440"],
            id="size-separator",
        ),
        pytest.param(
            {"model": "cogview-4", "prompt": "a cat", "quality": "ultra"},
            ["quality", "standard, hd"],
            id="quality",
        ),
        pytest.param(
            {"model": "kling-image-o1", "prompt": "a cat", "num_images": 10},
            ["num_images", "1 to 9"],
            id="num-images-range",
        ),
        pytest.param(
            {"model": "kling-image-o1", "prompt": "a cat", "num_images": True},
            ["num_images", "integer", "boolean"],
            id="bool-is-not-int",
        ),
        pytest.param(
            {"model": "kling-image-o1", "prompt": "a cat", "images": ["x"] * 11},
            ["images", "at most 10"],
            id="too-many-urls",
        ),
        pytest.param(
            {"model": "flux-2", "prompt": "a cat", "input_urls": ["ftp://x"]},
            ["input_urls[0]", "http(s) URL"],
            id="bad-url",
        ),
        pytest.param(
            {"model": "seedream/4.5-edit", "prompt": "a cat"},
            ["image_urls", "required"],
            id="edit-needs-images",
        ),
        pytest.param(
            {"model": "ideogram-v3", "prompt": "a cat", "aspect_ratio": "21:9"},
            ["aspect_ratio", "1:1, 16:9, 9:16, 4:3, 3:4"],
            id="aspect",
        ),
    ],
)
def test_invalid_fields_get_400_naming_the_field_and_allowed_values(client, body, needles) -> None:
    r = client.post(CREATE, json=body, headers=AUTH)
    assert_error(r, 400, "invalid_request_error", *needles)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        pytest.param(b"{", "Malformed JSON", id="truncated"),
        pytest.param(b"", "Malformed JSON", id="empty"),
        pytest.param(b"[1, 2]", "JSON object, got an array", id="array"),
        pytest.param(b'"text"', "JSON object, got a string", id="string"),
        pytest.param(b"null", "JSON object, got null", id="null"),
        pytest.param(b'{"a": NaN}', "NaN is not valid JSON", id="nan"),
        pytest.param(b"\xff\xfe{}", "UTF-8", id="not-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "Malformed JSON", id="deep-nesting"),
    ],
)
def test_malformed_bodies_get_400(client: Client, raw: bytes, needle: str) -> None:
    r = client.post(CREATE, content=raw, headers=JSON_HEADERS)
    assert_error(r, 400, "invalid_request_error", needle)
    assert client.create().status_code == 200  # still serving


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_wrong_content_type_gets_415(client: Client, content_type) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    r = client.post(CREATE, content=b'{"model":"cogview-4","prompt":"a cat"}', headers=headers)
    assert_error(r, 415, "unsupported_media_type", "application/json")


def test_json_content_type_with_charset_is_accepted(client: Client) -> None:
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    r = client.post(CREATE, content=b'{"model":"cogview-4","prompt":"a cat"}', headers=headers)
    assert r.status_code == 200


def test_oversize_body_by_content_length_gets_413(client: Client) -> None:
    limit = client.app.state.emulator.config.max_body_bytes
    r = client.post(CREATE, content=b" " * (limit + 1), headers=JSON_HEADERS)
    assert_error(r, 413, "request_too_large", str(limit))


def test_unknown_path_and_wrong_method_get_the_envelope(client: Client) -> None:
    assert_error(client.get("/api/v1/models"), 404, "not_found", "Unknown path")
    assert_error(client.get("/"), 404, "not_found")
    r = client.get(CREATE, headers=AUTH)
    assert_error(r, 405, "method_not_allowed", "POST")
    assert "POST" in r.headers["allow"]
    r = client.put("/api/v1/tasks/x", headers=AUTH)
    assert_error(r, 405, "method_not_allowed", "Allowed: GET, HEAD")
    assert r.headers["allow"] == "GET, HEAD"
    r = client.post("/files/n17ab_cogview4/0.png")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD"
    assert [e["status"] for e in client.get("/_emulator/requests").json()["requests"]] == [
        404, 404, 405, 405, 405,
    ]  # fmt: skip


def test_paths_that_only_look_emulated_are_unknown(client: Client) -> None:
    for path in ("/api/v1/tasks/", "/api/v1/tasks/a/b", "/files/x", "/files/x/", "/files//0.png",
                 "/api/v1/images/generations/", "/api/v1/images/generations/x"):  # fmt: skip
        assert_error(client.get(path, headers=AUTH), 404, "not_found", "Unknown path")


def test_a_client_gone_mid_body_is_journaled_not_reported_as_a_bug() -> None:
    app = create_app(Config(seed=1, clock="virtual"))
    emulator = app.state.emulator
    messages = iter([{"type": "http.request", "body": b'{"mod', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"authorization", f"Bearer {KEY}".encode()),
               (b"content-type", b"application/json")]  # fmt: skip
    scope = {"type": "http", "method": "POST", "path": CREATE, "query_string": b"",
             "headers": headers, "scheme": "http", "server": ("testserver", 80)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent == []  # nobody to answer
    assert emulator.server_errors == []
    (entry,) = emulator.journal.entries()
    assert (entry["status"], entry["key"]) == (499, KEY)


def test_unknown_task_gets_404_with_the_id(client: Client) -> None:
    assert_error(client.poll("n48nope_cv4"), 404, "not_found", "n48nope_cv4")
    r = client.poll("x" * 5000)
    assert_error(r, 404, "not_found")
    assert len(r.json()["error"]["message"]) < 300


def test_insufficient_credits_is_402_and_creates_nothing(client: Client) -> None:
    client.put(f"/_emulator/keys/{KEY}", json={"credits": 7})
    assert client.create().status_code == 200  # 4 credits
    r = client.create()
    assert_error(r, 402, "insufficient_credits", "costs 4", "has 3", "/_emulator/keys/")
    account = client.get(f"/_emulator/keys/{KEY}").json()
    assert account["credits"] == 3 and account["reserved"] == 4
    assert len(client.get("/_emulator/tasks").json()["tasks"]) == 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["model", "prompt", "size", "quality", "aspect_ratio", "num_images", "images", "type"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=10),
        JSON_VALUES | st.sampled_from(["cogview-4", "kling-image-o1", "flux-2", "1:1", "2K"]),
        max_size=6,
    )
)
def test_no_body_produces_a_server_error(client: Client, body) -> None:
    r = client.post(CREATE, content=json.dumps(body), headers=JSON_HEADERS)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert client.app.state.emulator.server_errors == []
