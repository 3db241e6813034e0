"""The model catalogue: which routes and ``model`` values exist, their fields, prices, timing and
the media they give (image sizes, video sizes and lengths, audio lengths).

The data lives in ``data/models.json``: ``outputs`` (the kinds of file a task gives), ``routes``
(each create route: its path and output) and ``families`` (models, grouped as the docs group
them). Adding a model is adding an entry there; adding a route of a known kind is adding a
route entry. This module turns it into typed, validated objects once, at start-up.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Field",
    "Measures",
    "Model",
    "Output",
    "Pricing",
    "Route",
    "Timing",
    "aspect_pixels",
    "even_pixels",
    "parse_fields",
    "seeded_int",
]

FIELD_KINDS = (
    "string", "enum", "integer", "number", "boolean", "duration", "url", "url_list",
    "object_list", "array",
)  # fmt: skip
#: what a price is multiplied by: the number of files, the (priced) duration, the characters,
#: or nothing (``task``: one price per task, however many files it gives)
QUANTITIES = ("files", "duration", "characters", "task")
#: the :class:`Measures` a model keeps, by the values of the fields that decide them
MEASURES_KEPT = 256


class CatalogueError(ValueError):
    """The catalogue data file is inconsistent; the message names the entry and the problem."""


@dataclass(frozen=True, slots=True)
class Field:
    """One request field a model accepts, with its constraints."""

    name: str
    kind: str
    required: bool = False
    default: Any = None
    values: tuple[Any, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    #: a ``duration``'s documented JSON type (``integer`` or ``string``): strict mode wants it
    type: str | None = None
    #: accepted outside strict mode only (what real clients send beyond the docs)
    lenient: bool = False
    #: a tighter ``max_length`` that strict mode applies (an older page's limit)
    strict_max_length: int | None = None
    #: an ``object_list``'s item fields
    item: Mapping[str, Field] = field(default_factory=dict)

    def domain(self) -> tuple[str, ...]:
        """The values this field takes as price-table keys (enum values, booleans, documented
        durations)."""
        if self.kind == "boolean":
            return ("false", "true")
        return tuple(str(v) for v in self.values)


def table_key(value: Any) -> str:
    """A field value as a price-table key: JSON spelling for booleans, text otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class Pricing:
    """Credits of a task: a flat price or a table keyed by some fields' values, times a
    quantity (``files``: per file; ``duration``: per second; ``characters``: per ``per``
    characters; ``task``: once), rounded up, at least ``min``."""

    flat: float | None = None
    by: tuple[str, ...] = ()
    table: Mapping[str, float] = field(default_factory=dict)
    times: str = "files"
    per: int = 1
    min: int = 0

    def rate(self, params: Mapping[str, Any]) -> float:
        if self.flat is not None:
            return self.flat
        return self.table[" ".join(table_key(params[name]) for name in self.by)]

    def credits(self, params: Mapping[str, Any], quantity: float) -> int:
        return max(self.min, math.ceil(self.rate(params) * quantity / self.per - 1e-9))

    def maximum(self) -> float:
        return self.flat if self.flat is not None else max(self.table.values())


@dataclass(frozen=True, slots=True)
class Timing:
    """Default task duration: uniform in [min_s, max_s], a share of it spent queued."""

    min_s: float
    max_s: float
    queued_fraction: tuple[float, float] = (0.1, 0.25)


@dataclass(frozen=True, slots=True)
class Output:
    """A kind of file a finished task gives, and its keys in ``data.output``."""

    kind: str  # image | video | audio | music
    url_field: str
    urls_field: str
    #: file extension -> media type; the first is the default
    formats: Mapping[str, str]
    #: cover art served beside every file (``{n}.png`` next to ``{n}.mp3``): its extension,
    #: media type and (width, height); None: no cover
    cover: tuple[str, str, int, int] | None = None
    #: ``data.output`` also lists the files as ``clips`` (id, URLs, title, duration)
    clips: bool = False
    #: progress (percent) from which the first file is served while the task still runs
    first_at: int | None = None
    #: the default extension (the first of ``formats``)
    ext: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ext", next(iter(self.formats)))


@dataclass(frozen=True, slots=True)
class Route:
    """A create route of the API: its path and what its tasks give."""

    name: str
    path: str
    output: Output
    #: the ``error`` of a failed task when its script names none
    failure: str
    #: error ``type`` by HTTP status where this route's differs from the default (Suno's 400)
    error_types: Mapping[int, str] = field(default_factory=dict)
    #: the package that serves the route (None: the generic create of ``emulator.api``)
    served_by: str | None = None
    #: the model a request without ``model`` gets (None: ``model`` is required)
    default_model: str | None = None


class Measures(NamedTuple):
    """What a task's validated fields decide besides themselves."""

    width: int
    height: int
    #: how many files the task gives (images, clips)
    files: int
    credits: int
    #: the length of its video or audio, in seconds (0 for an image)
    duration_s: float


@dataclass(frozen=True, slots=True)
class Model:
    """A ``model`` value of a create route, with everything needed to serve it."""

    id: str
    family: str
    route: Route
    node: int
    tag: str
    webhook: bool
    timing: Timing
    pricing: Pricing
    fields: Mapping[str, Field]
    pixels: Mapping[str, Any]
    #: how long its media is: {} (an image), {"field": f}, {"fixed": s}, or from the text
    duration: Mapping[str, Any] = field(default_factory=dict)
    #: the request fields whose text is counted (speech): ``name`` or ``list.item``
    text_fields: tuple[str, ...] = ()
    #: cross-field rules (names from :data:`emulator.validation.CHECKS`, with their options)
    checks: tuple[Mapping[str, Any], ...] = ()
    #: on no public page (only real clients send it): unknown in strict mode
    undocumented: bool = False
    #: the field choosing the file format (an extension of the output), if any
    format_field: str | None = None
    #: other ``model`` values naming this model (older pages' names)
    aliases: tuple[str, ...] = ()
    #: how many files a task gives when the request has no ``num_images``
    files: int = 1
    #: ``%`` format of this model's task ids and how many random bits fill it; default
    #: ``n{node}{64 bits as 16 hex}_{tag}``
    id_format: str = ""
    id_bits: int = 64
    #: :meth:`measures` already made, by :meth:`deciding_fields`' values (at most MEASURES_KEPT)
    _measured: dict[tuple[Any, ...], Measures] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _deciding: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id_format:
            object.__setattr__(self, "id_format", f"n{self.node}%016x_{self.tag}")
        object.__setattr__(self, "_deciding", self.deciding_fields())

    def deciding_fields(self) -> tuple[str, ...] | None:
        """The fields whose values alone decide :meth:`measure`, all of them scalars (None:
        text or an input's size decides too: a speech model, an image tool)."""
        if "input" in self.pixels or self.text_fields or self.pricing.times == "characters":
            return None
        px, spec = self.pixels, self.duration
        short = px.get("short_side")
        names = [
            *(px.get(k) for k in ("size_field", "aspect_field", "resolution_field",
                                  "short_side_field")),
            short["by"] if isinstance(short, Mapping) else None,
            "num_images",
            *self.pricing.by,
            spec.get("field"),
            spec.get("shots", {}).get("flag"),  # a list when set: measured, never kept
        ]  # fmt: skip
        return tuple(dict.fromkeys(n for n in names if n and n in self.fields))

    def measures(self, params: Mapping[str, Any]) -> Measures:
        """:meth:`measure`, kept by the values that decide it (a load test sends few kinds of
        request: each kind is measured once)."""
        names = self._deciding
        shots = self.duration.get("shots")
        if names is None or (shots and params.get(shots["flag"])):
            return self.measure(params)
        key = tuple(map(params.get, names))
        found = self._measured.get(key)
        if found is None:
            found = self.measure(params)
            if len(self._measured) >= MEASURES_KEPT:
                self._measured.clear()
            self._measured[key] = found
        return found

    def measure(self, params: Mapping[str, Any]) -> Measures:
        """The frame size, file count, credits and media length of a task with ``params``."""
        width, height = self.pixel_size(params)
        return Measures(
            width, height, self.file_count(params), self.credits(params), self.duration_s(params)
        )

    @property
    def id_shape(self) -> str:
        """The id format as the docs write it: random digits as an ellipsis (``gen…bksv``)."""
        return re.sub(r"%0\d+x", "…", self.id_format)

    @property
    def output(self) -> Output:
        return self.route.output

    def pixel_size(
        self, params: Mapping[str, Any], input_size: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        """The placeholder's (width, height) for validated ``params``; (0, 0) for audio. An
        image tool's output follows ``input_size`` when the input's size is known (an emulator
        file), else the catalogue's stand-in size."""
        px = self.pixels
        if "none" in px:
            return 0, 0
        if "fixed" in px:
            width, height = px["fixed"]
            return int(width), int(height)
        if "size_field" in px:
            return _size(str(params[px["size_field"]]))
        if "input" in px:  # an image tool: the input's size (never fetched), times the scale
            width, height = input_size or px["input"]
            scale = int(params.get(px.get("scale_field", ""), 1))
            factor = min(scale, px.get("max_side", 1 << 30) / max(width, height))
            return max(1, int(width * factor)), max(1, int(height * factor))
        ratio = str(params[px["aspect_field"]]) if "aspect_field" in px else px.get("aspect", "1:1")
        if "short_side" in px or "short_side_field" in px:
            return even_pixels(ratio, self._short_side(params))
        resolution_field = px.get("resolution_field")
        scale = 1
        if resolution_field and str(params[resolution_field]).upper() == "2K":
            scale = 2
        return aspect_pixels(ratio, scale)

    def _short_side(self, params: Mapping[str, Any]) -> int:
        px = self.pixels
        if "short_side_field" in px:  # "720p", "768P": the digits
            return int(re.sub(r"\D", "", str(params[px["short_side_field"]])))
        short = px["short_side"]
        if isinstance(short, Mapping):
            return int(short["table"][table_key(params[short["by"]])])
        return int(short)

    def duration_s(self, params: Mapping[str, Any]) -> float:
        """How long the task's video or audio is, in seconds (0: an image; clips: the
        shortest a clip can be)."""
        spec = self.duration
        if not spec:
            return 0.0
        if "clips" in spec:
            return float(spec["clips"][0])
        if "fixed" in spec:
            return float(spec["fixed"])
        if "field" in spec:
            shots = spec.get("shots")
            if shots and params.get(shots["flag"]):
                return float(sum(int(shot["duration"]) for shot in params[shots["list"]]))
            return float(params[spec["field"]])
        speed = float(params.get(spec.get("speed_field", ""), 1.0))
        seconds = max(
            float(spec.get("min_s", 1.0)), self.characters(params) / spec["characters_per_s"]
        )
        return float(round(seconds / speed, 1))

    def file_seconds(self, params: Mapping[str, Any], seed: int, index: int) -> float:
        """How long file ``index`` of a task is. Clips (``duration: {"clips": [lo, hi]}``)
        last whole seconds drawn from the task's seed and the index, unless ``params`` fix
        them (``clip_seconds``: a list, one per clip); other media as :meth:`duration_s`."""
        spec = self.duration
        if "clips" not in spec:
            return self.duration_s(params)
        fixed = params.get("clip_seconds")
        if isinstance(fixed, list) and index < len(fixed):
            return float(fixed[index])
        low, high = (int(v) for v in spec["clips"])
        return float(seeded_int(seed, index, low, high))

    def characters(self, params: Mapping[str, Any]) -> int:
        """How many characters of text the request carries (speech is priced by them)."""
        total = 0
        for name in self.text_fields:
            outer, _, inner = name.partition(".")
            value = params.get(outer)
            if inner and isinstance(value, list):
                total += sum(len(str(item.get(inner, ""))) for item in value)
            elif isinstance(value, str):
                total += len(value)
        return total

    def priced_duration(self, params: Mapping[str, Any]) -> float:
        """The duration a price is computed for: the smallest documented one at least as long
        as the requested one (a lenient duration costs what the next documented one costs)."""
        seconds = self.duration_s(params)
        spec = self.fields.get(self.duration.get("field", ""))
        if spec is None:
            return seconds
        if spec.values:
            documented = _documented_durations(spec.values)
            return next((d for d in documented if d >= seconds), documented[-1])
        return max(seconds, spec.min or 0)

    def file_count(self, params: Mapping[str, Any]) -> int:
        return int(params.get("num_images", self.files))

    def file_ext(self, params: Mapping[str, Any]) -> str:
        """The extension of the task's files: the format field's value, else the output's."""
        if self.format_field is not None and self.format_field in params:
            return str(params[self.format_field])
        return self.output.ext

    def credits(self, params: Mapping[str, Any]) -> int:
        """What a task with validated ``params`` costs."""
        pricing = self.pricing
        if pricing.flat is not None and pricing.times == "files" and not pricing.min:
            return math.ceil(pricing.flat * self.file_count(params))  # most image models
        times = pricing.times
        if times == "duration":
            quantity = self.priced_duration(params)
        elif times == "characters":
            quantity = float(self.characters(params))
        elif times == "task":
            quantity = 1.0
        else:
            quantity = float(self.file_count(params))
        if self.duration.get("field") in pricing.by:  # a table keyed by the priced duration
            params = {**params, **self._priced_keys(params)}
        return pricing.credits(params, quantity)

    def _priced_keys(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A duration in a price table's key is the priced (documented) duration."""
        name = self.duration.get("field")
        if name in self.pricing.by:
            seconds = self.priced_duration(params)
            return {name: int(seconds) if seconds.is_integer() else seconds}
        return {}

    def allowed_pixel_sizes(self) -> list[tuple[int, int]]:
        """Every size this model can produce (to bound the renderer)."""
        names = [
            self.pixels[k]
            for k in ("size_field", "aspect_field", "resolution_field", "short_side_field",
                      "scale_field")
            if self.pixels.get(k)
        ]  # fmt: skip
        short = self.pixels.get("short_side")
        if isinstance(short, Mapping):
            names.append(short["by"])
        domains = [self.fields[n].values or (False, True) for n in names]
        sizes = {self.pixel_size(dict(zip(names, combo, strict=True)))
                 for combo in itertools.product(*domains)}  # fmt: skip
        return sorted(s for s in sizes if s != (0, 0))


def seeded_int(seed: int, index: int, low: int, high: int) -> int:
    """A whole number in [low, high], a pure function of a task's seed and a file index."""
    return random.Random(f"{seed}:{index}").randint(low, high)


@functools.lru_cache(maxsize=64)  # one per duration field of the catalogue
def _documented_durations(values: tuple[Any, ...]) -> tuple[float, ...]:
    return tuple(sorted(float(v) for v in values))


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


@functools.lru_cache(maxsize=256)
def even_pixels(ratio: str, short: int) -> tuple[int, int]:
    """A video frame: ``short`` px on the short side, the long side ``short`` times the ratio
    rounded to the nearest even number (16:9 at 480: 854x480)."""
    w, h = (int(part) for part in ratio.split(":"))
    long = 2 * round(short * max(w, h) / min(w, h) / 2)
    return (long, short) if w >= h else (short, long)


class Catalogue:
    """All routes and models, a model looked up by model id or family id (a family id means
    its default model), on one route or on any."""

    def __init__(
        self,
        models: Mapping[str, Model],
        family_defaults: Mapping[str, str],
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.models = dict(models)
        self.family_defaults = dict(family_defaults)
        self.routes: dict[str, Route] = dict(routes or {})
        for model in self.models.values():
            self.routes.setdefault(model.route.name, model.route)
        #: alias -> model id
        self.aliases = {a: m.id for m in self.models.values() for a in m.aliases}
        #: create path -> route
        self.by_path = {route.path: route for route in self.routes.values()}
        sizes = [w * h for m in self.models.values() for w, h in m.allowed_pixel_sizes()]
        self.max_pixels = max(sizes, default=1024 * 1024)
        self.max_images = max(
            ((f.max or 1) for m in self.models.values() for f in m.fields.values()
             if f.name == "num_images"),
            default=1,
        )  # fmt: skip

    def resolve(self, name: str, route: Route | None = None) -> Model | None:
        """The model ``name`` (a model id, a family id or an alias) names (on ``route`` only,
        when given), or None."""
        model = self.models.get(name)
        if model is None and name in self.family_defaults:
            model = self.models[self.family_defaults[name]]
        if model is None and name in self.aliases:
            model = self.models[self.aliases[name]]
        if model is not None and route is not None and model.route is not route:
            return None
        return model

    def field_values(self, name: str) -> frozenset[str]:
        """Every value any model allows for the enum field ``name`` (empty: no such field)."""
        return frozenset(
            value
            for model in self.models.values()
            if (spec := model.fields.get(name)) is not None and spec.kind == "enum"
            for value in spec.values
        )

    def names(self, route: Route | None = None) -> list[str]:
        """Every accepted ``model`` value (of ``route``): model ids, then family ids that are
        not also models, then aliases."""
        ids = [m.id for m in self.models.values() if route is None or m.route is route]
        extra = [
            f
            for f, default in self.family_defaults.items()
            if f not in self.models and (route is None or self.models[default].route is route)
        ]
        aliases = [a for a, m in self.aliases.items()
                   if route is None or self.models[m].route is route]  # fmt: skip
        return [*ids, *extra, *aliases]

    def route_models(self, route: Route) -> list[Model]:
        return [m for m in self.models.values() if m.route is route]

    @staticmethod
    @functools.cache
    def default() -> Catalogue:
        """The catalogue shipped with the package, loaded once and shared by every emulator
        that is given no other (loading it takes about 5 ms): read it, never change it."""
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
        try:
            outputs = {name: _output(name, raw) for name, raw in data.get("outputs", {}).items()}
            outputs.setdefault("image", DEFAULT_OUTPUT)
            routes = {
                name: _route(name, raw, outputs) for name, raw in data.get("routes", {}).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogueError(f"{source}: routes/outputs: {exc}") from exc
        routes.setdefault(
            "images", Route("images", DEFAULT_PATH, outputs["image"], DEFAULT_FAILURE)
        )
        models: dict[str, Model] = {}
        family_defaults: dict[str, str] = {}
        for i, fam in enumerate(data["families"]):
            where = f"{source}: families[{i}] ({fam.get('family', '?')})"
            try:
                family_models = _family_models(fam, defaults, routes)
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
        taken = set(models) | set(family_defaults)
        for model in models.values():
            for alias in model.aliases:
                if alias in taken:
                    raise CatalogueError(f"{source}: alias {alias!r} of {model.id!r} is taken")
                taken.add(alias)
        return cls(models, family_defaults, routes)


#: the image route, for catalogue files that name no routes
DEFAULT_PATH = "/api/v1/images/generations"
DEFAULT_FAILURE = "Image generation failed"
DEFAULT_OUTPUT = Output("image", "image_url", "image_urls", {"png": "image/png"})


def _output(name: str, raw: Mapping[str, Any]) -> Output:
    formats = {str(k): str(v) for k, v in raw["formats"].items()}
    if not formats:
        raise ValueError(f"output {name!r}: needs at least one format")
    cover = raw.get("cover")
    if cover is not None:
        width, height = cover["size"]
        cover = (str(cover["format"]), str(cover["media_type"]), int(width), int(height))
    first_at = raw.get("first_at")
    return Output(
        name, str(raw["url_field"]), str(raw["urls_field"]), formats, cover,
        bool(raw.get("clips", False)), None if first_at is None else int(first_at),
    )  # fmt: skip


def _route(name: str, raw: Mapping[str, Any], outputs: Mapping[str, Output]) -> Route:
    if raw["output"] not in outputs:
        raise ValueError(f"route {name!r}: output {raw['output']!r} is not one of {list(outputs)}")
    types = {int(k): str(v) for k, v in raw.get("error_types", {}).items()}
    return Route(
        name, str(raw["path"]), outputs[raw["output"]], str(raw["failure"]), types,
        raw.get("served_by"), raw.get("default_model"),
    )  # fmt: skip


def _pair(value: Any) -> tuple[float, float]:
    low, high = value
    return float(low), float(high)


#: per-model keys that override the family's
_MODEL_KEYS = ("pixels", "duration", "text_fields", "checks", "undocumented", "format_field",
               "files")  # fmt: skip


def _family_models(
    fam: Mapping[str, Any], defaults: Mapping[str, Any], routes: Mapping[str, Route]
) -> list[Model]:
    timing_data = {**defaults.get("timing", {}), **fam.get("timing", {})}
    timing = Timing(
        float(timing_data["min_s"]),
        float(timing_data["max_s"]),
        _pair(timing_data.get("queued_fraction", (0.1, 0.25))),
    )
    if not 0 <= timing.min_s <= timing.max_s:
        raise ValueError(f"timing: need 0 <= min_s <= max_s, got {timing.min_s}..{timing.max_s}")
    route_name = fam.get("route", "images")
    if route_name not in routes:
        raise ValueError(f"route {route_name!r} is not one of: {', '.join(routes)}")
    base_fields = {"prompt": defaults["prompt"], **fam.get("fields", {})}
    ids = fam.get("id") or {}
    out = []
    for model_id, spec in fam["models"].items():
        raw_fields = {**base_fields, **spec.get("fields", {})}
        fields = {
            name: _field(name, raw) for name, raw in raw_fields.items() if raw is not None
        }  # a model drops a family field with null
        options = {k: spec.get(k, fam.get(k)) for k in _MODEL_KEYS}
        model = Model(
            id=model_id,
            family=fam["family"],
            route=routes[route_name],
            node=int(fam["node"] if "format" not in ids else fam.get("node", 0)),
            tag=str(fam["tag"] if "format" not in ids else fam.get("tag", "")),
            webhook=bool(fam.get("webhook", False)),
            timing=timing,
            pricing=_pricing(spec["credits"], fields),
            fields=fields,
            pixels=options["pixels"] or {"none": True},
            duration=options["duration"] or {},
            text_fields=tuple(options["text_fields"] or ()),
            checks=tuple(options["checks"] or ()),
            undocumented=bool(options["undocumented"]),
            format_field=options["format_field"],
            aliases=tuple(spec.get("aliases", ())),
            files=int(options["files"] or 1),
            id_format=str(ids.get("format", "")),
            id_bits=int(ids.get("bits", 64)),
        )
        for w, h in model.allowed_pixel_sizes():  # fails early on a bad pixels rule
            if w < 1 or h < 1:
                raise ValueError(f"model {model_id!r}: pixel size {w}x{h} is empty")
        if model.format_field is not None:
            unknown = set(fields[model.format_field].values) - set(model.output.formats)
            if unknown:
                raise ValueError(f"model {model_id!r}: formats {sorted(unknown)} unknown")
        duration_field = model.duration.get("field")
        if duration_field is not None and duration_field not in fields:
            raise ValueError(f"model {model_id!r}: duration field {duration_field!r} missing")
        out.append(model)
    return out


def parse_fields(raw: Mapping[str, Any]) -> dict[str, Field]:
    """Field specs as the catalogue writes them (for routes described outside it: Suno's)."""
    return {name: _field(name, spec) for name, spec in raw.items()}


def _field(name: str, raw: Mapping[str, Any]) -> Field:
    kind = raw["kind"]
    if kind not in FIELD_KINDS:
        raise ValueError(f"field {name!r}: kind {kind!r} is not one of: {', '.join(FIELD_KINDS)}")
    values = tuple(raw.get("values", ()))
    if kind == "enum" and not values:
        raise ValueError(f"field {name!r}: an enum needs 'values'")
    if "default" in raw and kind == "enum" and raw["default"] not in values:
        raise ValueError(f"field {name!r}: default {raw['default']!r} is not one of its values")
    if kind == "duration" and raw.get("type") not in ("integer", "string"):
        raise ValueError(f"field {name!r}: a duration needs 'type': integer or string")
    item = {k: _field(k, v) for k, v in raw.get("item", {}).items()}
    if kind == "object_list" and not item:
        raise ValueError(f"field {name!r}: an object_list needs 'item' fields")
    special = {"kind", "values", "item"}
    known = {f for f in Field.__slots__ if f not in ("name", *special)}
    unknown = set(raw) - known - special
    if unknown:
        raise ValueError(f"field {name!r}: unknown keys {sorted(unknown)}")
    return Field(
        name=name, kind=kind, values=values, item=item, **{k: raw[k] for k in raw if k in known}
    )


def _pricing(raw: Any, fields: Mapping[str, Field]) -> Pricing:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return Pricing(flat=raw)
    times = raw.get("times", "files")
    if times not in QUANTITIES:
        raise ValueError(f"credits: 'times' {times!r} is not one of: {', '.join(QUANTITIES)}")
    extra = {"times": times, "per": int(raw.get("per", 1)), "min": int(raw.get("min", 0))}
    if "flat" in raw:
        return Pricing(flat=raw["flat"], **extra)
    by = tuple(raw["by"])
    table = {str(k): v for k, v in raw["table"].items()}
    for name in by:
        spec = fields.get(name)
        if spec is None or not spec.domain() or spec.default is None:
            raise ValueError(
                f"credits: 'by' field {name!r} must be an enum, boolean or duration field with "
                "a default"
            )
    excluded = set(raw.get("excluded", ()))
    for combo in itertools.product(*(fields[name].domain() for name in by)):
        key = " ".join(combo)
        if key not in table and key not in excluded:
            raise ValueError(f"credits: table has no price for {key!r}")
    return Pricing(by=by, table=table, **extra)
