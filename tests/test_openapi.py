"""The OpenAPI description: built from the catalogue, served, readable, and enforced on the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from emulator.catalogue import Catalogue
from emulator.chat.request import parse_request
from emulator.errors import InvalidRequest
from emulator.openapi import build_openapi, schema_name
from emulator.service import Emulator
from emulator.validation import validate_create

from .conformance import SPEC, ConformanceError, problems, schema_validator
from .conftest import AUTH, Client, make_client

CATALOGUE = Catalogue.load()
EXAMPLES = Path(__file__).parent.parent / "fixtures" / "examples"
CREATE = schema_validator("components/schemas/CreateRequest")


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    assert SPEC["openapi"].startswith("3.1")
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # raises SchemaError naming the problem


def test_every_catalogue_model_has_a_request_schema_from_the_catalogue() -> None:
    schemas = SPEC["components"]["schemas"]
    for route in CATALOGUE.routes.values():  # one request schema per create route
        if route.served_by is not None:  # (a route of its own package: described there)
            continue
        create = SPEC["paths"][route.path]["post"]["requestBody"]["content"]["application/json"]
        name = create["schema"]["$ref"].rsplit("/", 1)[1]
        refs = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas[name]["oneOf"]}
        assert refs == {schema_name(m.id) for m in CATALOGUE.route_models(route)}, route.path
    assert schemas["CreateRequest"]["oneOf"][0]["$ref"].endswith(schema_name("cogview-4"))
    cogview = schemas[schema_name("cogview-4")]
    assert cogview["properties"]["size"]["enum"] == [
        *CATALOGUE.models["cogview-4"].fields["size"].values,
        None,  # (an optional field sent as null counts as not sent)
    ]
    assert cogview["properties"]["prompt"]["maxLength"] == 1000
    assert set(cogview["required"]) == {"model", "prompt"}
    # a family id that names its default model is in that model's schema
    grok = schemas[schema_name("grok-imagine/text-to-image")]
    assert grok["properties"]["model"]["enum"] == ["grok-imagine/text-to-image", "grok-imagine"]


def test_a_new_catalogue_entry_appears_in_the_document() -> None:
    data = json.loads(Path("emulator/data/models.json").read_text())
    fam = json.loads(json.dumps(data["families"][0]))
    fam.update(family="toy", node=99, tag="toy", default_model="toy-1")
    fam["models"] = {"toy-1": {"credits": 1}}
    data["families"].append(fam)
    spec = build_openapi(Catalogue.from_data(data))
    assert schema_name("toy-1") in spec["components"]["schemas"]


CREATE_EXAMPLES = [
    p
    for p in sorted(EXAMPLES.glob("*.json"))
    if json.loads(p.read_text()).get("request", {}).get("method") == "POST"
]


@pytest.mark.parametrize("path", CREATE_EXAMPLES, ids=lambda p: p.stem)
def test_documented_examples_match_the_request_schema(path: Path) -> None:
    request = json.loads(path.read_text())["request"]
    assert list(CREATE.iter_errors(request["body"])) == []


@pytest.mark.parametrize(
    "body",
    [
        {"model": "cogview-4", "prompt": "ab"},
        {"model": "cogview-4", "prompt": "a fox", "size": "1024x1024"},
        {"model": "kling-image-o1", "prompt": "a fox", "num_images": 10},
        {"model": "nope", "prompt": "a fox"},
        {"prompt": "a fox"},
        {"model": "flux-2", "prompt": "a fox", "input_urls": ["ftp://x"]},
    ],
)
def test_schema_and_validator_reject_the_same_bad_bodies(body: dict) -> None:
    assert list(CREATE.iter_errors(body)), body
    with pytest.raises(InvalidRequest):
        validate_create(body, CATALOGUE)


KLING = {"model": "kling-3"}
HAILUO = {"model": "hailuo/2-3-image-to-video-pro", "prompt": "a fox",
          "image": "https://example.com/a.png"}  # fmt: skip
SHOT = {"prompt": "a fox", "duration": 5}


@pytest.mark.parametrize(
    ("route", "body", "valid"),
    [
        pytest.param("videos", KLING, False, id="kling-3-no-prompt"),
        pytest.param("videos", {**KLING, "prompt": None}, False, id="kling-3-null-prompt"),
        pytest.param(
            "videos", {**HAILUO, "resolution": "1080P", "duration": None}, True, id="null-is-6s"
        ),
        pytest.param(
            "speech",
            {"model": "elevenlabs-v3", "text": None, "dialogue": [{"text": "hi"}]},
            True,
            id="speech-null-text",
        ),
        pytest.param("videos", {**KLING, "multi_shots": False}, False, id="kling-3-shots-off"),
        pytest.param("videos", {**KLING, "prompt": "a fox"}, True, id="kling-3-prompt"),
        pytest.param("videos", {**KLING, "multi_shots": True}, False, id="shots-without-list"),
        pytest.param(
            "videos", {**KLING, "multi_shots": True, "multi_prompt": [SHOT]}, True, id="shots"
        ),
        pytest.param(
            "videos",
            {**HAILUO, "resolution": "1080P", "duration": "10"},
            False,
            id="hailuo-1080p-10s",
        ),
        pytest.param(
            "videos",
            {**HAILUO, "resolution": "1080P", "duration": 5},
            True,
            id="hailuo-1080p-5s-lenient",
        ),
        pytest.param("videos", {**HAILUO, "duration": "10"}, True, id="hailuo-768p-10s"),
        pytest.param("videos", {**HAILUO, "duration": " 0007 "}, True, id="numeric-string"),
        pytest.param("videos", {**HAILUO, "duration": "00007"}, False, id="five-digits"),
        pytest.param("videos", {**HAILUO, "duration": 11}, False, id="past-the-longest"),
        pytest.param(
            "videos",
            {"model": "wan-2-6", "prompt": "a fox", "duration": 8.0},
            True,
            id="wan-8s-lenient",
        ),
        pytest.param("speech", {"model": "elevenlabs-v3"}, False, id="speech-neither"),
        pytest.param(
            "speech",
            {"model": "elevenlabs-v3", "text": "hi", "dialogue": [{"text": "hi"}]},
            False,
            id="speech-both",
        ),
        pytest.param("speech", {"model": "elevenlabs-v3", "text": "hi"}, True, id="speech-text"),
        pytest.param("music", {"model": "chirp-v4-0"}, False, id="music-no-prompt"),
        pytest.param("music", {"prompt": "la"}, True, id="music-default-model"),  # one schema
        pytest.param("music", {"model": "chirp-v4-0", "prompt": ""}, False, id="music-empty"),
        pytest.param(
            "music",
            {"model": "chirp-v4-0", "gpt_description_prompt": "jazz"},
            True,
            id="music-description",
        ),
    ],
)
def test_schema_and_validator_agree_on_rules_across_fields(
    route: str, body: dict, valid: bool
) -> None:
    """The catalogue's cross-field rules, and lenient durations, as the description states
    them: what it allows is exactly what the validator accepts."""
    path = CATALOGUE.routes[route].path
    schema = SPEC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert schema_validator(f"components/schemas/{name}").is_valid(body) is valid
    try:
        validate_create(body, CATALOGUE, route=CATALOGUE.routes[route])
    except InvalidRequest:
        assert not valid
    else:
        assert valid


def test_the_music_routes_say_which_id_they_need() -> None:
    cover = schema_validator("components/schemas/MusicCoverRequest")
    assert not cover.is_valid({}) and not cover.is_valid({"task_id": ""})
    assert cover.is_valid({"taskId": "gen1"}) and cover.is_valid({"task_id": "gen1"})
    lyrics = schema_validator("components/schemas/TimestampedLyricsRequest")
    assert not lyrics.is_valid({"task_id": "", "audio_id": ""})
    upload = schema_validator("components/schemas/UploadCoverRequest")
    assert not upload.is_valid({"audio_id": "a", "model": "gemini"})  # a music model only
    assert not upload.is_valid({"audio_id": "a", "custom_mode": True})  # custom: a prompt
    assert upload.is_valid({"audio_id": "a", "custom_mode": True, "prompt": "la", "model": "suno"})
    for path, names in (("/api/v1/audio/music/feed", {"task_id", "workId", "taskId"}),
                        ("/api/v1/audio/music/cover/status", {"task_id", "taskId"})):  # fmt: skip
        [task] = SPEC["paths"][path]["get"]["parameters"]
        assert task["required"] and task["explode"] and task["style"] == "form"
        assert set(task["schema"]["properties"]) == names  # each a query parameter of its own


CHAT_REQUEST = schema_validator("components/schemas/ChatCompletionRequest")
SAID = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup"}}]


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        pytest.param({"messages": [{"role": "tool", "content": "4"}]}, False, id="tool-no-id"),
        pytest.param({"messages": [{"role": "tool"}]}, False, id="tool-no-content"),
        pytest.param(
            {"messages": [{"role": "assistant", "content": None}]}, False, id="assistant-nothing"
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "tool_calls": None}]},
            False,
            id="assistant-null-calls",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"function": {"name": "lookup"}}],
                    }
                ]
            },
            True,
            id="assistant-calls",
        ),
        pytest.param(
            {"messages": [{"role": "user", "tool_calls": 5, "content": "x"}]},
            True,
            id="user-tool-calls-ignored",
        ),
        pytest.param({"messages": SAID, "tool_choice": "auto"}, False, id="auto-no-tools"),
        pytest.param({"messages": SAID, "tool_choice": "auto", "tools": TOOLS}, True, id="auto"),
        pytest.param({"messages": SAID, "temperature": None, "stream": None}, True, id="nulls"),
        pytest.param({"messages": SAID, "reasoning_effort": None}, False, id="effort-null"),
        pytest.param({"messages": SAID, "stop": ""}, False, id="empty-stop"),
        pytest.param(
            {"messages": SAID, "max_completion_tokens": None, "max_tokens": 0},
            False,
            id="max-tokens-0",
        ),
        pytest.param(
            {"messages": SAID, "response_format": {"type": "json_schema"}},
            False,
            id="json-schema-missing",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            False,
            id="text-part-no-text",
        ),
    ],
)
def test_the_chat_request_schema_is_what_the_validator_accepts(body: dict, valid: bool) -> None:
    body = {"model": "gemini", **body}
    assert CHAT_REQUEST.is_valid(body) is valid
    try:
        parse_request(body)
    except InvalidRequest:
        assert not valid
    else:
        assert valid


def test_openapi_json_is_served_and_matches_the_builder(client: Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == build_openapi(CATALOGUE)


def test_docs_page_is_self_contained_html_naming_every_path_and_model(client: Client) -> None:
    r = client.get("/_emulator/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    for path in SPEC["paths"]:
        assert f"<code>{path}</code>" in page, path
    for model in CATALOGUE.models:
        assert model in page
    # nothing fetched from elsewhere: no scripts, no stylesheets, no absolute URLs in attributes
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=\"https?:", page)


# -- the conformance check itself -----------------------------------------------------------


def test_conforming_cycle_passes(client: Client) -> None:
    assert Client.check_schema is True
    task_id = client.create().json()["data"]["task_id"]
    client.poll(task_id)
    data = client.run_to_end(task_id)
    client.get(data["output"]["image_url"])
    client.get("/no/such/path")
    client.poll("n48nope_cv4")
    client.get("/_emulator/tasks")


def test_status_word_scenario_still_conforms() -> None:
    words = {"status_words": {"succeeded": "COMPLETED", "failed": "FAILED"}, "name": "w"}
    with make_client(scenario=words) as c:
        task_id = c.create().json()["data"]["task_id"]
        assert c.run_to_end(task_id)["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("progress"), "'progress' is a required property"),
        (lambda d: d.update(percent=d.pop("progress")), "Additional properties"),
        (lambda d: d.update(progress="50"), "is not of type 'integer'"),
        (lambda d: d.update(output={"url": "x"}), "output"),
    ],
    ids=["missing", "renamed", "wrong-type", "output-shape"],
)
def test_a_planted_shape_change_fails_the_check(
    client: Client, monkeypatch: pytest.MonkeyPatch, change, expected: str
) -> None:
    original = Emulator.task_body

    def planted(self, *args, **kwargs):
        data = original(self, *args, **kwargs)
        change(data)
        return data

    monkeypatch.setattr(Emulator, "task_body", planted)
    task_id = client.create().json()["data"]["task_id"]
    with pytest.raises(ConformanceError, match=re.escape(expected)):
        client.poll(task_id)


def test_a_planted_error_envelope_change_fails_the_check(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emulator.errors

    monkeypatch.setattr(
        emulator.errors,
        "error_body",
        lambda status, message, type_: {"error": {"code": str(status), "message": message}},
    )
    with pytest.raises(ConformanceError, match="'type' is a required property"):
        client.poll("n48nope_cv4")


def test_check_flags_undocumented_statuses_and_media_types() -> None:
    ok = {"content-type": "application/json"}
    body = json.dumps({"status": "reset"}).encode()
    assert problems("POST", "/_emulator/reset", 200, ok, body) == []
    assert problems("POST", "/_emulator/reset", 201, ok, body)  # no default there
    assert problems("POST", "/_emulator/reset", 200, {"content-type": "text/plain"}, body)
    assert problems("GET", "/api/v1/unknown", 200, ok, b"{}")  # a 2xx on an unknown path
    assert problems("GET", "/api/v1/tasks/x", 200, ok, b"{not json")
    assert problems("GET", "/files/x/0.png", 200, {"content-type": "image/png"}, b"") == []
    # emulator pages the description does not cover are not checked; the emulated API always is
    assert (
        problems("GET", "/_emulator/ui/app.js", 200, {"content-type": "text/javascript"}, b"") == []
    )
    token = json.dumps({"error": {"code": 401, "message": "token", "type": "authentication_error"}})
    assert problems("GET", "/_emulator/health", 401, ok, token.encode()) == []


def test_check_is_applied_to_control_calls(client: Client) -> None:
    r = client.put("/_emulator/keys/aio_x", json={"credits": 5})
    assert r.status_code == 200
    r = client.get("/_emulator/keys/aio_x", headers=AUTH)
    assert r.json()["credits"] == 5
