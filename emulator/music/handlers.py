"""The Suno routes besides generate (a catalogue route served by ``emulator.api``): feed, extend,
cover, upload-cover, their status routes and timestamped lyrics.

Each handler takes the steps of every emulated endpoint in their order (the key 401, the
scenario, then the request's own 400/404) and creates its tasks through
:meth:`~emulator.service.Emulator.create_task`, so credits, scenarios' task effects, webhooks and
the journal work as for any task. The rules that are data (fields, clip lengths, prices, id
formats) are in ``data/music.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from ..api import Answer, Call, answer, decide, read_json_call, runtime_of
from ..catalogue import Field, Model, parse_fields, seeded_int
from ..errors import InsufficientCredits, InvalidRequest, NotFound
from ..service import Emulator
from ..tasks import State, Task, observe
from ..validation import CreateRequest, check_fields, validate_create
from ..wire import clip_id, success
from .lyrics import lyrics_data
from .wire import (
    BAD_PARAMS,
    LYRICS_MISSING,
    LYRICS_NOT_FOUND,
    NOT_FOUND,
    UPLOAD_PREFIX,
    cover_created,
    cover_status,
    feed_data,
    suno_created,
    upload_created,
    upload_status,
)

__all__ = ["HANDLERS", "Rules", "rules"]

Handler = Callable[[Emulator, Call], Awaitable[Answer]]


@dataclasses.dataclass(frozen=True, slots=True)
class Rules:
    """``data/music.json``, typed."""

    extend_fields: Mapping[str, Field]
    extend_clip_s: tuple[int, int]
    upload_fields: Mapping[str, Field]
    upload_id: tuple[str, int]
    upload_min_credits: int
    upload_clip_s: tuple[int, int]
    lyrics_credits: int
    waveform: int


@functools.cache
def rules() -> Rules:
    """The Suno rules shipped with the package, loaded once."""
    data = json.loads(resources.files("emulator").joinpath("data/music.json").read_text("utf-8"))
    extend, upload, lyrics = data["extend"], data["upload-cover"], data["lyrics"]
    low, high = extend["clip_seconds"]
    ulow, uhigh = upload["clip_seconds"]
    return Rules(
        parse_fields(extend["fields"]), (int(low), int(high)),
        parse_fields(upload["fields"]), (upload["id"]["format"], int(upload["id"]["bits"])),
        int(upload["min_credits"]), (int(ulow), int(uhigh)),
        int(lyrics["credits"]), int(lyrics["waveform"]),
    )  # fmt: skip


# -- helpers ------------------------------------------------------------------------------


def _query(call: Call, *names: str) -> str | None:
    """The first of ``names`` in the query string (``task_id``, older pages' ``workId``)."""
    query: dict[str, list[str]] = parse_qs(call.scope["query_string"].decode("latin-1"))
    for name in names:
        values = query.get(name)
        if values and values[0]:
            return values[0]
    return None


def _music_task(emulator: Emulator, key: str, task_id: str | None) -> tuple[Task, Model] | None:
    """The key's generate, extend or upload-cover task ``task_id``, with its model."""
    task = emulator.lookup(key, task_id) if task_id else None
    model = emulator.catalogue.models.get(task.model) if task is not None else None
    if task is None or model is None or not model.output.clips:
        return None
    return task, model


def _base(emulator: Emulator, call: Call) -> str:
    """Where file URLs point: ``--public-url``, else where the client reached the server."""
    return emulator.config.public_url or call.base_url()


async def _decide_poll(emulator: Emulator, call: Call, key: str, task: Task | None) -> Any:
    """The scenario's decision on a status route (a ``task`` endpoint: rules match its task's
    model and route), before the request's own 400 and 404."""
    model = task.model if task is not None else None
    return await decide(emulator, call, "task", key, model=model, task=task)


def _strict(call: Call) -> bool:
    return runtime_of(call).scenario.strict


def _model(emulator: Emulator, name: Any, fallback: Model) -> Model:
    """The music model ``name`` names (``fallback`` when absent), or 400 listing them."""
    if name is None:
        return fallback
    route = fallback.route
    model = emulator.catalogue.resolve(str(name), route)
    if model is None:
        allowed = ", ".join(emulator.catalogue.names(route))
        raise InvalidRequest(f"model: {str(name)[:60]!r} is not a music model. Allowed: {allowed}")
    return model


def _create(
    emulator: Emulator, call: Call, key: str, request: CreateRequest, decision: Any,
    clip_s: tuple[float, float] | None = None, start: float = 0.0,
) -> Task:  # fmt: skip
    """The task of ``request``, its clips ``start`` + seeded seconds in ``clip_s``."""
    task = emulator.create_task(
        key, request, effect=decision.task, runtime=runtime_of(call), base_url=call.base_url
    )
    if clip_s is not None:  # whole seconds from the task's own seed (known once it exists)
        low, high = int(clip_s[0]), int(clip_s[1])
        task.params["clip_seconds"] = [
            start + seeded_int(task.seed, i, low, high) for i in range(task.images)
        ]
    call.task_id = task.id
    return task


# -- the routes ---------------------------------------------------------------------------


async def feed(emulator: Emulator, call: Call) -> Answer:
    """``GET /audio/music/feed?task_id=`` (or ``?workId=``): 0 credits."""
    key = call.key = emulator.authenticate(call.raw_headers.get(b"authorization"))
    task_id = _query(call, "task_id", "workId", "taskId")
    call.task_id = task_id[:200] if task_id else None
    found = _music_task(emulator, key, task_id)
    decision = await _decide_poll(emulator, call, key, found[0] if found else None)
    if task_id is None:
        raise InvalidRequest("task_id: is required (the id a music create answered)")
    if found is None:
        raise NotFound(f"Music task not found: {task_id[:80]!r} (a generate, extend or "
                       "upload-cover id of this API key)")  # fmt: skip
    task, model = found
    view = emulator.poll(task)
    return answer(decision, success(feed_data(task, view, model, _base(emulator, call))))


async def extend(emulator: Emulator, call: Call) -> Answer:
    """``POST /audio/music/extend``: two clips continuing a clip of a finished music task."""
    key, body, decision = await read_json_call(emulator, call, "create", "music")
    r = rules()
    params = check_fields(body, r.extend_fields, _strict(call), also=("model",))
    found = _music_task(emulator, key, params["origin_task_id"])
    if found is None or found[0].id.startswith(UPLOAD_PREFIX):
        raise NotFound(
            f"origin_task_id: no generate or extend task {params['origin_task_id'][:80]!r} "
            "for this API key"
        )
    origin, origin_model = found
    if emulator.poll(origin).state is not State.SUCCEEDED:
        raise InvalidRequest("origin_task_id: the music task has not finished: poll its feed "
                             "until data.type is SUCCESS, then extend it")  # fmt: skip
    model = _model(emulator, params.pop("model", None), origin_model)
    index = params["extend_audio_index"]
    length = origin_model.file_seconds(origin.params, origin.seed, index)
    start = params.get("extensionStartTime", length)
    if not 0 < start <= length:
        raise InvalidRequest(
            f"extensionStartTime: {start:g} s is out of range (allowed: more than 0, at most "
            f"the clip's {length:g} s)"
        )
    if params["custom_mode"]:
        if "prompt" not in params:
            raise InvalidRequest("prompt: is required when custom_mode is true")
        inherited = {}
    else:  # [doc] custom_mode false: inherit everything from the origin
        inherited = {k: v for k, v in origin.params.items()
                     if k in ("prompt", "gpt_description_prompt", "style", "title", "tags",
                              "make_instrumental")}  # fmt: skip
    params = {**inherited, **params, "extensionStartTime": start}
    request = CreateRequest(model, params, (), 0, 0, model.files, model.credits(params))
    task = _create(emulator, call, key, request, decision, r.extend_clip_s, start)
    return answer(decision, suno_created(task.id))


def _cover_of(emulator: Emulator, music_id: str) -> Task | None:
    """The cover task made for music task ``music_id`` that has not failed, if any."""
    now = emulator.clock.now()
    for task in emulator.tasks.all():
        if (
            task.model == "suno-cover"
            and task.params.get("task_id") == music_id
            and observe(task, now).state is not State.FAILED
        ):
            return task
    return None


async def cover(emulator: Emulator, call: Call) -> Answer:
    """``POST /audio/music/cover/generate``: two images for a finished music task, once."""
    key, body, decision = await read_json_call(emulator, call, "create", "music-cover")
    music_id = body.get("task_id", body.get("taskId"))
    if not isinstance(music_id, str) or not music_id:
        raise InvalidRequest(f"{BAD_PARAMS}: send task_id, the id of a finished music task")
    found = _music_task(emulator, key, music_id)
    if found is None:
        raise NotFound(f"{NOT_FOUND}: {music_id[:80]!r} is no music task of this API key")
    music, _ = found
    if emulator.poll(music).state is not State.SUCCEEDED:
        raise InvalidRequest(f"{BAD_PARAMS}: the music task has not finished yet")
    if _cover_of(emulator, music.id) is not None:
        raise InvalidRequest(f"{BAD_PARAMS}: this music task has its cover already (GET "
                             "/api/v1/audio/music/cover/status with its taskId)")  # fmt: skip
    route = emulator.catalogue.routes["music-cover"]
    request = validate_create({"task_id": music.id}, emulator.catalogue, route=route)
    task = _create(emulator, call, key, request, decision)
    return answer(decision, cover_created(task.id))


async def cover_status_route(emulator: Emulator, call: Call) -> Answer:
    """``GET /audio/music/cover/status?task_id=``."""
    key = call.key = emulator.authenticate(call.raw_headers.get(b"authorization"))
    task_id = _query(call, "task_id", "taskId")
    call.task_id = task_id[:200] if task_id else None
    task = emulator.lookup(key, task_id) if task_id else None
    if task is not None and task.model != "suno-cover":
        task = None
    decision = await _decide_poll(emulator, call, key, task)
    if task_id is None:
        raise InvalidRequest("task_id: is required (the taskId cover/generate answered)")
    if task is None:
        raise NotFound(f"{NOT_FOUND}: {task_id[:80]!r}")
    view = emulator.poll(task)
    return answer(decision, cover_status(task, view, _base(emulator, call)))


async def upload_cover(emulator: Emulator, call: Call) -> Answer:
    """``POST /audio/music/upload-cover/generate``: a new rendition of an uploaded audio."""
    key, body, decision = await read_json_call(emulator, call, "create", "music")
    r = rules()
    params = check_fields(body, r.upload_fields, _strict(call), also=("model",))
    if params["custom_mode"] and "prompt" not in params:
        raise InvalidRequest("prompt: is required when custom_mode is true")
    default = emulator.catalogue.models[emulator.catalogue.routes["music"].default_model or ""]
    model = _model(emulator, params.pop("model", None), default)
    credits = max(r.upload_min_credits, model.credits(params))
    variant = dataclasses.replace(model, id_format=r.upload_id[0], id_bits=r.upload_id[1])
    request = CreateRequest(variant, params, (), 0, 0, model.files, credits)
    task = _create(emulator, call, key, request, decision, r.upload_clip_s)
    return answer(decision, upload_created(task.id))


async def upload_status_route(emulator: Emulator, call: Call) -> Answer:
    """``GET /audio/music/upload-cover/status?task_id=``."""
    key = call.key = emulator.authenticate(call.raw_headers.get(b"authorization"))
    task_id = _query(call, "task_id", "taskId")
    call.task_id = task_id[:200] if task_id else None
    found = _music_task(emulator, key, task_id)
    if found is not None and not found[0].id.startswith(UPLOAD_PREFIX):
        found = None
    decision = await _decide_poll(emulator, call, key, found[0] if found else None)
    if task_id is None:
        raise InvalidRequest("task_id: is required (the task_id upload-cover answered)")
    if found is None:
        raise NotFound(f"Upload-cover task not found: {task_id[:80]!r}")
    task, model = found
    view = emulator.poll(task)
    data = upload_status(task, view, model, _base(emulator, call))
    return answer(decision, success(data))


async def lyrics(emulator: Emulator, call: Call) -> Answer:
    """``POST /audio/music/timestamped-lyrics``: synchronous, charged only when found."""
    key, body, decision = await read_json_call(emulator, call, "create", "music")
    task_id, audio_id = body.get("task_id"), body.get("audio_id")
    if not (isinstance(task_id, str) and task_id and isinstance(audio_id, str) and audio_id):
        raise InvalidRequest(f"{LYRICS_MISSING}: send the music task's task_id and a clip id "
                             "(response_data[].id of its feed) as audio_id")  # fmt: skip
    call.task_id = task_id[:200]
    found = _music_task(emulator, key, task_id)
    index = None
    if found is not None and emulator.poll(found[0]).state is State.SUCCEEDED:
        task, model = found
        ids = [clip_id(task, i) for i in range(task.images)]
        if audio_id in ids and not task.params.get("make_instrumental"):
            index = ids.index(audio_id)
    if found is None or index is None:
        raise NotFound(f"{LYRICS_NOT_FOUND}: no finished, sung clip {audio_id[:80]!r} in task "
                       f"{task_id[:80]!r} of this API key")  # fmt: skip
    credits = rules().lyrics_credits
    try:
        emulator.ledger.reserve(key, credits)
    except InsufficientCredits:  # refunds of ended tasks not settled yet may cover it
        emulator.settle()
        emulator.ledger.reserve(key, credits)
    emulator.ledger.spend(key, credits)
    data = lyrics_data(task, model, index, rules().waveform)
    return answer(decision, success(data))


#: operation (emulator.music.wire.MUSIC_PATHS) -> handler
HANDLERS: Mapping[str, Handler] = {
    "feed": feed,
    "extend": extend,
    "cover": cover,
    "cover-status": cover_status_route,
    "upload-cover": upload_cover,
    "upload-cover-status": upload_status_route,
    "lyrics": lyrics,
}
