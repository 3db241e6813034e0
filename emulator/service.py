"""The emulator's state and operations, free of HTTP: create, poll, download, control.

Everything here takes and returns plain values, so the HTTP layer, the in-process mode and the
tests share one implementation.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .billing import Ledger
from .catalogue import Catalogue, Model
from .clock import Clock, RealClock, VirtualClock, iso
from .config import Config
from .engine import ScenarioRuntime
from .errors import AuthenticationError, InsufficientCredits, InvalidRequest, NotFound
from .journal import Journal
from .scenarios import Scenario, ScenarioError, TaskEffect, load
from .tasks import HOT_SWEEP, State, Task, TaskScript, TaskStore, TaskView, observe
from .validation import CreateRequest, validate_create
from .webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from .images import ImageCache, RenderedImage

__all__ = ["DEFAULT_STATUS_WORDS", "Emulator"]

#: Internal state -> ``data.status`` on the wire (the documentation's own words).
DEFAULT_STATUS_WORDS: Mapping[State, str] = {
    State.QUEUED: "IN_PROGRESS",
    State.RUNNING: "IN_PROGRESS",
    State.SUCCEEDED: "completed",
    State.FAILED: "failed",
}

DEFAULT_FAILURE = "Image generation failed"
#: most Authorization header values whose key is remembered (parsed once, not per request)
KEYS_SEEN = 1024


class Emulator:
    """One emulated API in One account space: tasks, balances, journal, clock and randomness."""

    def __init__(self, config: Config | None = None, catalogue: Catalogue | None = None) -> None:
        self.config = config or Config()
        self.catalogue = catalogue or Catalogue.load()
        self.seed = self.config.seed if self.config.seed is not None else secrets.randbits(32)
        self.clock: Clock = VirtualClock() if self.config.clock == "virtual" else RealClock()
        self.rng = random.Random(self.seed)
        self.ledger = Ledger(self.config.default_credits, dict(self.config.keys))
        self.journal = Journal(self.config.journal_size)
        self.tasks = TaskStore(
            ttl_s=self.config.task_ttl_s,
            max_tasks=self.config.max_tasks,
            on_finish=self._finished,
            on_drop=self._forget,
        )
        self.webhooks = WebhookDispatcher(self, backoff_s=self.config.webhook_backoff_s)
        self.status_words: Mapping[State, str] = dict(DEFAULT_STATUS_WORDS)
        self.server_errors: list[str] = []
        self._images: ImageCache | None = None
        self._runtimes: dict[str, ScenarioRuntime] = {}
        self._keys_seen: dict[str | bytes | None, str] = {}
        self.scenario_error: str | None = None
        self._watch: tuple[str, float, float] | None = None  # (path, mtime, last check)
        self.key_scenarios = {k: self._runtime(v) for k, v in self.config.key_scenarios.items()}
        self.use_scenario(self.config.scenario)
        self._start_runtime = self.scenario

    # -- scenarios ------------------------------------------------------------------------

    def use_scenario(self, spec: str | os.PathLike[str] | Mapping[str, Any] | Scenario) -> Scenario:
        """Make ``spec`` (ready name, YAML path, dict or Scenario) the server's scenario."""
        self.scenario = self._runtime(spec)
        self.scenario_error = None
        self._watch = None
        if not isinstance(spec, Mapping | Scenario) and str(spec) not in _library_names():
            path = os.fspath(spec)
            self._watch = (path, _mtime(path), time.monotonic())
        return self.scenario.scenario

    def runtime_for(self, key: str | None, header: str | None) -> ScenarioRuntime:
        """Precedence: X-Emulator-Scenario header > the key's scenario > the server's."""
        if header:
            if header not in _library_names():  # never a path: clients must not read files
                raise InvalidRequest(
                    f"X-Emulator-Scenario: {header[:80]!r} is not a ready scenario. "
                    f"Ready: {', '.join(sorted(_library_names()))}"
                )
            return self._runtime(header)
        if key is not None and key in self.key_scenarios:
            return self.key_scenarios[key]
        if self._watch is not None:
            self._maybe_reload()
        return self.scenario

    def _runtime(
        self, spec: str | os.PathLike[str] | Mapping[str, Any] | Scenario
    ) -> ScenarioRuntime:
        cacheable = isinstance(spec, str) and spec in _library_names()
        if cacheable and spec in self._runtimes:
            return self._runtimes[spec]  # type: ignore[index]
        scenario = spec if isinstance(spec, Scenario) else load(spec)  # type: ignore[arg-type]
        runtime = ScenarioRuntime(scenario, self.seed, self._resolve_model)
        if cacheable:
            self._runtimes[spec] = runtime  # type: ignore[index]
        return runtime

    def _resolve_model(self, name: str) -> str | None:
        model = self.catalogue.resolve(name)
        return model.id if model else None

    def _maybe_reload(self) -> None:
        """Hot reload of the scenario file, checked at most twice a second; a broken edit keeps
        the running scenario and is reported."""
        assert self._watch is not None
        path, mtime, checked = self._watch
        now = time.monotonic()
        if now - checked < 0.5:
            return
        current = _mtime(path)
        self._watch = (path, current, now)
        if current == mtime:
            return
        try:
            scenario = load(path)
        except ScenarioError as exc:
            self.scenario_error = str(exc)
            print(f"aio-emulator: kept scenario {self.scenario.scenario.name!r}; {exc}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        self.scenario = ScenarioRuntime(scenario, self.seed, self._resolve_model)
        self.scenario_error = None
        print(f"aio-emulator: reloaded scenario {scenario.name!r} from {path}", file=sys.stderr,
              flush=True)  # fmt: skip

    # -- auth -----------------------------------------------------------------------------

    def authenticate(self, authorization: str | bytes | None) -> str:
        """The API key from an Authorization header value (text, or the bytes of the ASGI
        scope), or 401 saying what is wrong."""
        key = self._keys_seen.get(authorization)  # a client sends the same header every time
        if key is None:
            key = _api_key(authorization)
            if len(self._keys_seen) >= KEYS_SEEN:
                self._keys_seen.clear()
            self._keys_seen[authorization] = key
        if self.config.only_known_keys and not self.ledger.knows(key):
            raise AuthenticationError("Invalid API key")
        return key

    # -- the image API --------------------------------------------------------------------

    def validate(self, body: Mapping[str, Any], *, strict: bool = False) -> CreateRequest:
        return validate_create(body, self.catalogue, strict=strict)

    def create_task(
        self,
        key: str,
        request: CreateRequest,
        script: TaskScript | None = None,
        effect: TaskEffect | None = None,
        runtime: ScenarioRuntime | None = None,
        base_url: str | Callable[[], str] | None = None,
    ) -> Task:
        """Reserve the credits and create the task (402 and nothing created if short).

        ``base_url`` (where the client reached the server, or a function giving it: only
        webhooks need it) builds the image URLs of the task's webhook, unless
        ``config.public_url`` is set.
        """
        now = self.clock.now()  # the store sweeps when the task is added
        if request.model.id == "grok-imagine/upscale":
            source = self.tasks.get(str(request.params["task_id"]))
            if source is None or source.key != key:
                raise InvalidRequest(
                    f"task_id: no image task {request.params['task_id']!r} for this API key"
                )
        try:
            self.ledger.reserve(key, request.credits)
        except InsufficientCredits:  # refunds not settled yet may cover it: settle them all
            self.tasks.sweep(now)
            self.ledger.reserve(key, request.credits)
        if script is None:
            script = self.default_script(request)
            if effect is not None:
                script = (runtime or self.scenario).task_script(effect, script)
        model = request.model
        task = Task(  # positional: 12 fields by keyword cost ~2 us more per create (make count)
            self._new_id(model),  # id
            key,
            model.id,  # model
            request.params,  # validation built it for this request: owned, never mutated
            now,  # created_at
            script,
            self.rng.getrandbits(32),  # seed
            request.width,
            request.height,
            request.images,
            request.credits,
            str(request.params.get("prompt", "")),  # prompt
        )
        if effect is not None:
            task.image = effect.image
        self.tasks.add(task, now)
        callback = request.params.get("callback_url")
        if request.model.webhook and isinstance(callback, str):
            base = base_url() if callable(base_url) else base_url
            base = base or f"http://{self.config.host}:{self.config.port}"
            words = (runtime or self.scenario).status_words(self.status_words)
            webhook = effect.webhook if effect is not None else None
            self.webhooks.register(task, callback, base, words, webhook)
        return task

    def default_script(self, request: CreateRequest) -> TaskScript:
        """Realistic timing: total uniform in the model's range, part of it queued."""
        timing = request.model.timing
        random = self.rng.random  # what rng.uniform(a, b) computes, without its call overhead
        total = timing.min_s + (timing.max_s - timing.min_s) * random()
        low, high = timing.queued_fraction
        queued = total * (low + (high - low) * random())
        # to the millisecond; round(x, 3) costs three times round(x * 1000) / 1000
        return TaskScript(round(queued * 1000) / 1000, round((total - queued) * 1000) / 1000)

    def find(self, key: str, task_id: str) -> Task:
        """The key's task, or 404 (another key's task is indistinguishable from none)."""
        now = self.clock.now()
        self.tasks.sweep(now, HOT_SWEEP)
        task = self.tasks.get(task_id)
        if task is None or task.key != key:
            raise NotFound(_task_not_found(task_id))
        return task

    def task_body(
        self,
        task: Task,
        view: TaskView,
        base_url: str,
        words: Mapping[State, str] | None = None,
    ) -> dict[str, Any]:
        """``data`` of GET /api/v1/tasks/{id}."""
        output = None
        if view.state is State.SUCCEEDED:
            urls = [self.image_url(base_url, task, i) for i in range(task.images)]
            output = {"image_url": urls[0], "image_urls": urls}
        return {
            "task_id": task.id,
            "model": task.model,
            "status": (words or self.status_words)[view.state],
            "progress": view.progress,
            "created_at": iso(task.created_at),
            "updated_at": iso(view.updated_at),
            "output": output,
            "error": (view.error or DEFAULT_FAILURE) if view.state is State.FAILED else None,
            "credits_consumed": task.credits if view.state is State.SUCCEEDED else 0,
        }

    def task_listing(self, base_url: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every task (of ``key``), oldest first: its wire body under the current scenario's
        status words, plus ``key``, ``polls`` and ``state``. For the control API and tests."""
        now = self.clock.now()
        self.tasks.sweep(now)
        words = self.scenario.status_words(self.status_words)
        out: list[dict[str, Any]] = []
        for task in self.tasks:
            if key is None or task.key == key:
                view = observe(task, now)
                body = self.task_body(task, view, base_url, words)
                out.append(
                    {**body, "key": task.key, "polls": task.polls, "state": view.state.value}
                )
        return out

    def image_url(self, base_url: str, task: Task, index: int) -> str:
        base = self.config.public_url or base_url
        return f"{base.rstrip('/')}/files/{task.id}/{index}.png"

    def image(self, task_id: str, index: int) -> RenderedImage:
        """The PNG of a finished task (no key: image URLs are public, like a CDN's)."""
        now = self.clock.now()
        self.tasks.sweep(now, HOT_SWEEP)
        task = self.tasks.get(task_id)
        if task is None or not 0 <= index < task.images:
            raise NotFound(f"No image at this URL: task {task_id!r} has no image {index}")
        if observe(task, now).state is not State.SUCCEEDED:
            raise NotFound(f"Task {task_id!r} has not completed: it has no images yet")
        behaviour = task.image
        if behaviour is not None and behaviour.mode == "404":
            raise NotFound(f"No image at this URL (scenario: image 404) for task {task_id!r}")
        if behaviour is not None and behaviour.mode == "expire":
            ended = task.finished_at if task.finished_at is not None else now
            if now >= ended + behaviour.after_s:
                raise NotFound(f"The image of task {task_id!r} has expired")
        image = self.images.get((task.id, index))  # the usual case: no placeholder to build
        if image is None:
            from .images import Placeholder  # Pillow loads on the first download

            placeholder = Placeholder(
                width=task.width,
                height=task.height,
                seed=task.seed,
                model=task.model,
                prompt=task.prompt,
                task_id=task.id,
                index=index,
                count=task.images,
            )
            image = self.images.get_or_render(
                (task.id, index), placeholder, max_pixels=self.catalogue.max_pixels
            )
        if behaviour is not None and behaviour.mode == "corrupt":
            from .images import RenderedImage

            body = image.body[:64] + bytes(b ^ 0x5A for b in image.body[64:256])
            return RenderedImage(body, '"corrupt-' + image.etag.strip('"') + '"')
        return image

    @property
    def images(self) -> ImageCache:
        if self._images is None:  # Pillow loads on the first download, not at start-up
            from .images import ImageCache

            self._images = ImageCache(self.config.image_cache_bytes)
        return self._images

    # -- control --------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start: no tasks, default balances, empty journal, same seed; webhook
        deliveries in flight are cancelled."""
        self.webhooks.cancel_all()
        self.tasks.clear()
        self.ledger.reset()
        self.journal.clear()
        self.server_errors.clear()
        if self._images is not None:
            self._images.clear()
        self.clock.reset()  # type: ignore[attr-defined]
        self.rng.seed(self.seed)
        self.scenario = self._start_runtime
        for runtime in {*self._runtimes.values(), *self.key_scenarios.values(), self.scenario}:
            runtime.reset()

    def journal_request(
        self,
        scope: Mapping[str, Any],
        status: int,
        started: float,
        key: str | None = None,
        body: str | None = None,
        json_body: str | None = None,
        error: str | None = None,
        task_id: str | None = None,
        rule: str | None = None,
    ) -> None:
        """Journal one emulated request; ``started`` is its ``time.perf_counter()``.
        ``json_body`` is the text of a body that parsed as JSON, ``body`` any other body."""
        self.journal.record_request(
            scope["method"], scope["path"], scope["query_string"], key, body, json_body, status,
            error, task_id, rule, self.clock.now(), time.time(), time.perf_counter() - started,
        )  # fmt: skip

    def record_server_error(self, exc: BaseException) -> None:
        self.server_errors.append("".join(traceback.format_exception(exc)))
        del self.server_errors[:-100]

    # -- internals ------------------------------------------------------------------------

    def _new_id(self, model: Model) -> str:
        """``n{node}{16 hex digits}_{tag}``, the documented shape, unique among kept tasks."""
        shape = model.id_format
        while True:
            task_id = shape % self.rng.getrandbits(64)
            if self.tasks.get(task_id) is None:
                return task_id

    def _finished(self, task: Task, state: State) -> None:
        """Settle an ended task: spend its credits, or refund them; start its webhook."""
        if state is State.SUCCEEDED:
            self.ledger.spend(task.key, task.credits)
        else:
            self.ledger.refund(task.key, task.credits)
        if task.webhook is not None:
            self.webhooks.task_ended(task, state)

    def _forget(self, task: Task) -> None:
        if task.finished_at is None:  # evicted before it ended: it will never be billed
            self.ledger.refund(task.key, task.credits)
        if self._images is not None:
            self._images.discard(task.id)


def _api_key(authorization: str | bytes | None) -> str:
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    if not authorization:
        raise AuthenticationError(
            "Missing API key: send the header 'Authorization: Bearer aio_...'"
        )
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError(
            "Invalid API key: use the Bearer scheme, 'Authorization: Bearer aio_...'"
        )
    key = key.strip()
    if not key.startswith("aio_") or len(key) > 256:
        raise AuthenticationError("Invalid API key: keys start with 'aio_'")
    return key


def _library_names() -> set[str]:
    from .scenarios import library

    return set(library())


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


def _task_not_found(task_id: str) -> str:
    shown = task_id if len(task_id) <= 80 and task_id.isprintable() else repr(task_id[:80])
    return f"Task not found: {shown}"
