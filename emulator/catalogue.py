"""The model catalogue: which ``model`` values exist, their fields, prices, timing and image sizes.

The data lives in ``data/models.json`` (adding a model is adding an entry there); this module
turns it into typed, validated objects once, at start-up.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Catalogue", "CatalogueError", "Field", "Model", "Pricing", "Timing", "aspect_pixels"]

FIELD_KINDS = ("string", "enum", "integer", "url", "url_list")


class CatalogueError(ValueError):
    """The catalogue data file is inconsistent; the message names the entry and the problem."""


@dataclass(frozen=True, slots=True)
class Field:
    """One request field a model accepts, with its constraints."""

    name: str
    kind: str
    required: bool = False
    default: Any = None
    values: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    min: int | None = None
    max: int | None = None
    min_items: int | None = None
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class Pricing:
    """Credits per image: a flat price, or a table keyed by the values of some fields."""

    flat: int | None = None
    by: tuple[str, ...] = ()
    table: Mapping[str, int] = field(default_factory=dict)

    def per_image(self, params: Mapping[str, Any]) -> int:
        if self.flat is not None:
            return self.flat
        return self.table[" ".join(str(params[name]) for name in self.by)]

    def maximum(self) -> int:
        return self.flat if self.flat is not None else max(self.table.values())


@dataclass(frozen=True, slots=True)
class Timing:
    """Default task duration: uniform in [min_s, max_s], a share of it spent queued."""

    min_s: float
    max_s: float
    queued_fraction: tuple[float, float] = (0.1, 0.25)


@dataclass(frozen=True, slots=True)
class Model:
    """A ``model`` value of the create endpoint, with everything needed to serve it."""

    id: str
    family: str
    node: int
    tag: str
    webhook: bool
    timing: Timing
    pricing: Pricing
    fields: Mapping[str, Field]
    pixels: Mapping[str, Any]
    #: ``%`` format of this model's task ids: ``n{node}{64 random bits as 16 hex}_{tag}``
    id_format: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_format", f"n{self.node}%016x_{self.tag}")

    def pixel_size(self, params: Mapping[str, Any]) -> tuple[int, int]:
        """The placeholder's (width, height) for validated ``params``."""
        if "fixed" in self.pixels:
            width, height = self.pixels["fixed"]
            return int(width), int(height)
        if "size_field" in self.pixels:
            return _size(str(params[self.pixels["size_field"]]))
        ratio = str(params[self.pixels["aspect_field"]])
        resolution_field = self.pixels.get("resolution_field")
        scale = 1
        if resolution_field and str(params[resolution_field]).upper() == "2K":
            scale = 2
        return aspect_pixels(ratio, scale)

    def image_count(self, params: Mapping[str, Any]) -> int:
        return int(params.get("num_images", 1))

    def allowed_pixel_sizes(self) -> list[tuple[int, int]]:
        """Every size this model can produce (to bound the renderer)."""
        if "fixed" in self.pixels:
            return [self.pixel_size({})]
        if "size_field" in self.pixels:
            name = self.pixels["size_field"]
            return [self.pixel_size({name: v}) for v in self.fields[name].values]
        aspect = self.fields[self.pixels["aspect_field"]].values
        res_field = self.pixels.get("resolution_field")
        resolutions = self.fields[res_field].values if res_field else ("1K",)
        return [
            self.pixel_size({self.pixels["aspect_field"]: a, res_field or "_": r})
            for a in aspect
            for r in resolutions
        ]


@functools.lru_cache(maxsize=256)  # sizes are a model's enum values: a handful
def _size(text: str) -> tuple[int, int]:
    width, height = text.split("*")
    return int(width), int(height)


@functools.lru_cache(maxsize=256)
def aspect_pixels(ratio: str, scale: int = 1) -> tuple[int, int]:
    """About one megapixel at ``ratio`` ('W:H'; 'auto' means 1:1), multiples of 16, times scale."""
    if ratio == "auto":
        ratio = "1:1"
    w, h = (int(part) for part in ratio.split(":"))
    r = w / h
    width = round(1024 * math.sqrt(r) / 16) * 16
    height = round(1024 / math.sqrt(r) / 16) * 16
    return width * scale, height * scale


class Catalogue:
    """All models, looked up by model id or family id (a family id means its default model)."""

    def __init__(self, models: Mapping[str, Model], family_defaults: Mapping[str, str]) -> None:
        self.models = dict(models)
        self.family_defaults = dict(family_defaults)
        self.max_pixels = max(
            w * h for model in self.models.values() for w, h in model.allowed_pixel_sizes()
        )
        self.max_images = max(
            (f.max or 1)
            for m in self.models.values()
            for f in m.fields.values()
            if f.name == "num_images"
        )

    def resolve(self, name: str) -> Model | None:
        model = self.models.get(name)
        if model is None and name in self.family_defaults:
            model = self.models[self.family_defaults[name]]
        return model

    def field_values(self, name: str) -> frozenset[str]:
        """Every value any model allows for the enum field ``name`` (empty: no such field)."""
        return frozenset(
            value
            for model in self.models.values()
            if (spec := model.fields.get(name)) is not None and spec.kind == "enum"
            for value in spec.values
        )

    def names(self) -> list[str]:
        """Every accepted ``model`` value: model ids, then family ids that are not also models."""
        extra = [f for f in self.family_defaults if f not in self.models]
        return [*self.models, *extra]

    @staticmethod
    @functools.cache
    def default() -> Catalogue:
        """The catalogue shipped with the package, loaded once."""
        return Catalogue.load()

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalogue:
        if path is None:
            text = resources.files("emulator").joinpath("data/models.json").read_text("utf-8")
            source = "emulator/data/models.json"
        else:
            text = Path(path).read_text("utf-8")
            source = str(path)
        return cls.from_data(json.loads(text), source=source)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "catalogue") -> Catalogue:
        defaults = data.get("defaults", {})
        models: dict[str, Model] = {}
        family_defaults: dict[str, str] = {}
        for i, fam in enumerate(data["families"]):
            where = f"{source}: families[{i}] ({fam.get('family', '?')})"
            try:
                family_models = _family_models(fam, defaults)
            except (KeyError, TypeError, ValueError) as exc:
                raise CatalogueError(f"{where}: {exc}") from exc
            for model in family_models:
                if model.id in models:
                    raise CatalogueError(f"{where}: model {model.id!r} is defined twice")
                models[model.id] = model
            if fam["default_model"] not in {m.id for m in family_models}:
                raise CatalogueError(
                    f"{where}: default_model {fam['default_model']!r} is not one of its models"
                )
            family_defaults[fam["family"]] = fam["default_model"]
        return cls(models, family_defaults)


def _pair(value: Any) -> tuple[float, float]:
    low, high = value
    return float(low), float(high)


def _family_models(fam: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[Model]:
    timing_data = {**defaults.get("timing", {}), **fam.get("timing", {})}
    timing = Timing(
        float(timing_data["min_s"]),
        float(timing_data["max_s"]),
        _pair(timing_data.get("queued_fraction", (0.1, 0.25))),
    )
    if not 0 <= timing.min_s <= timing.max_s:
        raise ValueError(f"timing: need 0 <= min_s <= max_s, got {timing.min_s}..{timing.max_s}")
    base_fields = {"prompt": defaults["prompt"], **fam.get("fields", {})}
    out = []
    for model_id, spec in fam["models"].items():
        raw_fields = {**base_fields, **spec.get("fields", {})}
        fields = {name: _field(name, raw) for name, raw in raw_fields.items()}
        model = Model(
            id=model_id,
            family=fam["family"],
            node=int(fam["node"]),
            tag=str(fam["tag"]),
            webhook=bool(fam.get("webhook", False)),
            timing=timing,
            pricing=_pricing(spec["credits"], fields),
            fields=fields,
            pixels=spec.get("pixels", fam["pixels"]),
        )
        for w, h in model.allowed_pixel_sizes():  # fails early on a bad pixels rule
            if w < 1 or h < 1:
                raise ValueError(f"model {model_id!r}: pixel size {w}x{h} is empty")
        out.append(model)
    return out


def _field(name: str, raw: Mapping[str, Any]) -> Field:
    kind = raw["kind"]
    if kind not in FIELD_KINDS:
        raise ValueError(f"field {name!r}: kind {kind!r} is not one of: {', '.join(FIELD_KINDS)}")
    values = tuple(raw.get("values", ()))
    if kind == "enum" and not values:
        raise ValueError(f"field {name!r}: an enum needs 'values'")
    if "default" in raw and kind == "enum" and raw["default"] not in values:
        raise ValueError(f"field {name!r}: default {raw['default']!r} is not one of its values")
    known = {f for f in Field.__slots__ if f not in ("name", "kind", "values")}
    unknown = set(raw) - known - {"kind", "values"}
    if unknown:
        raise ValueError(f"field {name!r}: unknown keys {sorted(unknown)}")
    return Field(name=name, kind=kind, values=values, **{k: raw[k] for k in raw if k in known})


def _pricing(raw: Any, fields: Mapping[str, Field]) -> Pricing:
    if isinstance(raw, int):
        return Pricing(flat=raw)
    by = tuple(raw["by"])
    table = {str(k): int(v) for k, v in raw["table"].items()}
    for name in by:
        if name not in fields or fields[name].kind != "enum" or fields[name].default is None:
            raise ValueError(f"credits: 'by' field {name!r} must be an enum field with a default")
    import itertools

    for combo in itertools.product(*(fields[name].values for name in by)):
        if " ".join(combo) not in table:
            raise ValueError(f"credits: table has no price for {' '.join(combo)!r}")
    return Pricing(by=by, table=table)
