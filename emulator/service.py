"""The emulator's state and operations, free of HTTP: create, poll, download, control.

Everything here takes and returns plain values, so the HTTP layer, the in-process mode and the
tests share one implementation.
"""

from __future__ import annotations

import random
import secrets
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .billing import Ledger
from .catalogue import Catalogue
from .clock import Clock, RealClock, VirtualClock, iso
from .config import Config
from .errors import AuthenticationError, InvalidRequest, NotFound
from .journal import Journal
from .tasks import State, Task, TaskScript, TaskStore, TaskView, observe
from .validation import CreateRequest, validate_create

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
            on_finish=self._settle,
            on_drop=self._forget,
        )
        self.status_words: Mapping[State, str] = dict(DEFAULT_STATUS_WORDS)
        self.server_errors: list[str] = []
        self._images: ImageCache | None = None

    # -- auth -----------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> str:
        """The API key from an Authorization header value, or 401 saying what is wrong."""
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
        if self.config.only_known_keys and not self.ledger.knows(key):
            raise AuthenticationError("Invalid API key")
        return key

    # -- the image API --------------------------------------------------------------------

    def validate(self, body: Mapping[str, Any], *, strict: bool = False) -> CreateRequest:
        return validate_create(body, self.catalogue, strict=strict)

    def create_task(
        self, key: str, request: CreateRequest, script: TaskScript | None = None
    ) -> Task:
        """Reserve the credits and create the task (402 and nothing created if short)."""
        now = self.clock.now()
        self.tasks.sweep(now)  # settle ended tasks first: refunds may pay for this one
        if request.model.id == "grok-imagine/upscale":
            source = self.tasks.get(str(request.params["task_id"]))
            if source is None or source.key != key:
                raise InvalidRequest(
                    f"task_id: no image task {request.params['task_id']!r} for this API key"
                )
        self.ledger.reserve(key, request.credits)
        rng = self.rng
        task = Task(
            id=self._new_id(request.model.node, request.model.tag),
            key=key,
            model=request.model.id,
            params=dict(request.params),
            created_at=now,
            script=script or self.default_script(request),
            seed=rng.getrandbits(32),
            width=request.width,
            height=request.height,
            images=request.images,
            credits=request.credits,
            prompt=str(request.params.get("prompt", "")),
        )
        self.tasks.add(task, now)
        return task

    def default_script(self, request: CreateRequest) -> TaskScript:
        """Realistic timing: total uniform in the model's range, part of it queued."""
        timing = request.model.timing
        total = self.rng.uniform(timing.min_s, timing.max_s)
        queued = total * self.rng.uniform(*timing.queued_fraction)
        return TaskScript(queued_s=round(queued, 3), running_s=round(total - queued, 3))

    def poll(self, key: str, task_id: str) -> tuple[Task, TaskView]:
        task = self.find(key, task_id)
        return task, self.tasks.poll(task, self.clock.now())

    def find(self, key: str, task_id: str) -> Task:
        """The key's task, or 404 (another key's task is indistinguishable from none)."""
        now = self.clock.now()
        self.tasks.sweep(now)
        task = self.tasks.get(task_id)
        if task is None or task.key != key:
            raise NotFound(_task_not_found(task_id))
        return task

    def task_body(self, task: Task, view: TaskView, base_url: str) -> dict[str, Any]:
        """``data`` of GET /api/v1/tasks/{id}."""
        output = None
        if view.state is State.SUCCEEDED:
            urls = [self.image_url(base_url, task, i) for i in range(task.images)]
            output = {"image_url": urls[0], "image_urls": urls}
        return {
            "task_id": task.id,
            "model": task.model,
            "status": self.status_words[view.state],
            "progress": view.progress,
            "created_at": iso(task.created_at),
            "updated_at": iso(view.updated_at),
            "output": output,
            "error": (view.error or DEFAULT_FAILURE) if view.state is State.FAILED else None,
            "credits_consumed": task.credits if view.state is State.SUCCEEDED else 0,
        }

    def image_url(self, base_url: str, task: Task, index: int) -> str:
        base = self.config.public_url or base_url
        return f"{base.rstrip('/')}/files/{task.id}/{index}.png"

    def image(self, task_id: str, index: int) -> RenderedImage:
        """The PNG of a finished task (no key: image URLs are public, like a CDN's)."""
        now = self.clock.now()
        self.tasks.sweep(now)
        task = self.tasks.get(task_id)
        if task is None or not 0 <= index < task.images:
            raise NotFound(f"No image at this URL: task {task_id!r} has no image {index}")
        from .images import Placeholder

        if observe(task, now).state is not State.SUCCEEDED:
            raise NotFound(f"Task {task_id!r} has not completed: it has no images yet")
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
        return self.images.get_or_render(
            (task.id, index), placeholder, max_pixels=self.catalogue.max_pixels
        )

    @property
    def images(self) -> ImageCache:
        if self._images is None:  # Pillow loads on the first download, not at start-up
            from .images import ImageCache

            self._images = ImageCache(self.config.image_cache_bytes)
        return self._images

    # -- control --------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start: no tasks, default balances, empty journal, same seed."""
        self.tasks.clear()
        self.ledger.reset()
        self.journal.clear()
        self.server_errors.clear()
        if self._images is not None:
            self._images.clear()
        self.clock.reset()  # type: ignore[attr-defined]
        self.rng.seed(self.seed)

    def record_server_error(self, exc: BaseException) -> None:
        self.server_errors.append("".join(traceback.format_exception(exc)))
        del self.server_errors[:-100]

    # -- internals ------------------------------------------------------------------------

    def _new_id(self, node: int, tag: str) -> str:
        while True:
            task_id = f"n{node}{self.rng.getrandbits(64):016x}_{tag}"
            if task_id not in self.tasks:
                return task_id

    def _settle(self, task: Task, state: State) -> None:
        if state is State.SUCCEEDED:
            self.ledger.spend(task.key, task.credits)
        else:
            self.ledger.refund(task.key, task.credits)

    def _forget(self, task: Task) -> None:
        if task.finished_at is None:  # evicted before it ended: it will never be billed
            self.ledger.refund(task.key, task.credits)
        if self._images is not None:
            self._images.discard(task.id)


def _task_not_found(task_id: str) -> str:
    shown = task_id if len(task_id) <= 80 and task_id.isprintable() else repr(task_id[:80])
    return f"Task not found: {shown}"
