"""The OpenAPI description: built from the catalogue, served, readable, and enforced on the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from emulator.catalogue import Catalogue
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
    assert cogview["properties"]["size"]["enum"] == list(
        CATALOGUE.models["cogview-4"].fields["size"].values
    )
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
