"""The model catalogue data file and its loader."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.catalogue import Catalogue, CatalogueError, Field, aspect_pixels
from emulator.errors import InvalidRequest
from emulator.validation import validate_create

DATA = json.loads(resources.files("emulator").joinpath("data/models.json").read_text())


def test_every_documented_model_and_family_resolves() -> None:
    cat = Catalogue.load()
    for name in [
        "cogview-4", "grok-imagine/text-to-image", "grok-imagine/upscale", "kling-image-o1",
        "ideogram-v3-turbo", "ideogram-v3-balanced", "ideogram-v3-quality", "imagen4-fast",
        "imagen4", "imagen4-ultra", "gpt-image-1-5", "flux-2", "seedream/4.5-text-to-image",
        "seedream/4.5-edit",
    ]:  # fmt: skip
        assert cat.resolve(name) is not None and cat.resolve(name).id == name
    assert cat.resolve("ideogram-v3").id == "ideogram-v3-turbo"
    assert cat.resolve("imagen-4").id == "imagen4"
    assert cat.resolve("seedream-4-5").id == "seedream/4.5-text-to-image"
    assert cat.resolve("nope") is None


@pytest.mark.parametrize(
    ("model", "params", "credits"),
    [
        ("cogview-4", {}, 4),
        ("imagen4-ultra", {}, 12),
        ("gpt-image-1-5", {"quality": "high"}, 28),
        ("kling-image-o1", {"type": "ai-multi-shot"}, 16),
        ("flux-2", {"type": "flex", "resolution": "1K"}, 5),
        ("flux-2", {"type": "pro", "resolution": "2K"}, 10),
    ],
)
def test_prices_come_from_the_data(model, params, credits) -> None:
    assert Catalogue.load().models[model].pricing.rate(params) == credits


@pytest.mark.parametrize(
    ("ratio", "scale", "size"),
    [("1:1", 1, (1024, 1024)), ("16:9", 1, (1360, 768)), ("9:16", 1, (768, 1360)),
     ("auto", 1, (1024, 1024)), ("21:9", 2, (3136, 1344)), ("3:2", 1, (1248, 832))],
)  # fmt: skip
def test_aspect_pixels_formula(ratio, scale, size) -> None:
    assert aspect_pixels(ratio, scale) == size
    assert size[0] % 16 == 0 and size[1] % 16 == 0


def test_max_pixels_bounds_every_model() -> None:
    cat = Catalogue.load()
    assert cat.max_pixels == 4096 * 4096  # image-upscale at 4x of a 1024x1024 input


def test_adding_a_model_is_adding_an_entry() -> None:
    data = copy.deepcopy(DATA)
    data["families"].append(
        {
            "family": "new-model", "node": 99, "tag": "new", "default_model": "new-model",
            "models": {"new-model": {"credits": 3}},
            "fields": {"aspect_ratio": {"kind": "enum", "values": ["1:1"], "default": "1:1"}},
            "pixels": {"aspect_field": "aspect_ratio", "resolution_field": None},
        }
    )  # fmt: skip
    model = Catalogue.from_data(data).resolve("new-model")
    assert model is not None and model.pricing.rate({}) == 3


def _broken(mutate) -> dict:
    data = copy.deepcopy(DATA)
    mutate(data["families"][0])
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.update(default_model="nope"), "default_model 'nope' is not one of"),
        (lambda f: f["fields"]["size"].update(kind="colour"), "kind 'colour' is not one of"),
        (lambda f: f["fields"]["size"].update(default="1*1"), "default '1*1' is not one"),
        (lambda f: f["fields"]["quality"].update(maxlen=3), "unknown keys"),
        (lambda f: f.update(timing={"min_s": 9, "max_s": 1}), "min_s <= max_s"),
        (lambda f: f.pop("node"), "node"),
    ],
)
def test_inconsistent_catalogue_data_is_reported_with_the_entry(mutate, message) -> None:
    with pytest.raises(CatalogueError, match=r"families\[0\] \(cogview-4\)") as info:
        Catalogue.from_data(_broken(mutate))
    assert message in str(info.value)


def test_pricing_table_must_cover_every_combination() -> None:
    data = copy.deepcopy(DATA)
    flux = next(f for f in data["families"] if f["family"] == "flux-2")
    del flux["models"]["flux-2"]["credits"]["table"]["pro 2K"]
    with pytest.raises(CatalogueError, match="no price for 'pro 2K'"):
        Catalogue.from_data(data)


_CATALOGUE = Catalogue.load()
_MEASURED = [m for m in _CATALOGUE.models.values() if m.route.served_by is None]


def _field_values(spec: Field) -> st.SearchStrategy[Any]:
    """Values of one field, mostly valid ones (the rest are refused before anything is
    measured)."""
    if spec.values:
        return st.sampled_from(spec.values)
    if spec.kind == "boolean":
        return st.booleans()
    if spec.kind in ("integer", "duration"):
        return st.integers(int(spec.min or 1), int(spec.max or 8))
    if spec.kind == "number":
        return st.floats(spec.min or 0.0, spec.max or 4.0)
    if spec.kind == "object_list" and "duration" in spec.item:  # video shots
        shot = st.fixed_dictionaries({"prompt": st.just("a shot"), "duration": st.integers(1, 5)})
        return st.lists(shot, min_size=1, max_size=3)
    if spec.kind == "url":
        return st.just("https://example.com/a.png")
    if spec.kind in ("url_list", "array"):
        return st.just(["https://example.com/a.png"])
    shortest = spec.min_length or 1
    return st.text(alphabet="abc ", min_size=shortest, max_size=max(shortest, 12))


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(st.sampled_from(_MEASURED))
    body: dict[str, Any] = {"model": model.id}
    for spec in model.fields.values():
        if spec.required or draw(st.booleans()):
            body[spec.name] = draw(_field_values(spec))
    return body


@settings(max_examples=500, deadline=None, derandomize=True)
@given(body=_bodies(), data=st.data())
def test_kept_measures_are_the_measures_of_every_request(
    body: dict[str, Any], data: st.DataObject
) -> None:
    """A model keeps what it measured by the fields that decide it: a request that differs
    from a measured one in any one field agrees with a fresh measurement of itself."""
    model = _CATALOGUE.resolve(body["model"])
    assert model is not None
    spec = data.draw(st.sampled_from(list(model.fields.values())))
    other = {**body, spec.name: data.draw(_field_values(spec))}
    for each in (body, other):  # the first is measured and kept, then the second is asked
        try:
            request = validate_create(each, _CATALOGUE, route=model.route)
        except InvalidRequest:
            continue
        kept = (request.width, request.height, request.images, request.credits, request.duration_s)
        assert kept == tuple(model.measure(request.params))
