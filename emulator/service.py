"""The emulator's state and operations, free of HTTP: create, poll, download, control.

:class:`Emulator` composes the parts (task store, ledger, journal, scenarios, keys, media,
webhooks) and offers the operations callers use; each operation settles what has ended before
it reads, so no caller has to. The HTTP layer, the in-process mode and the tests share it.
"""

from __future__ import annotations

import math
import random
import secrets
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import Authenticator
from .billing import Account, Ledger
from .catalogue import Catalogue, Model, Route
from .clock import Clock, RealClock, VirtualClock
from .config import Config
from .engine import ScenarioRuntime
from .errors import APIError, InsufficientCredits, NotFound, store_full
from .journal import Journal
from .media import Media, MediaFile
from .scenarios import Scenario, TaskEffect
from .selection import Loaded, ScenarioSelection, ScenarioSpec
from .tasks import (
    EndlessTasks,
    State,
    StoreFull,
    Task,
    TaskScript,
    TaskStore,
    TaskView,
    end_time,
    observe,
)
from .validation import CreateRequest, validate_create
from .webhooks import WebhookDispatcher
from .wire import FILES_PREFIX, StatusWords, task_data

__all__ = ["Emulator"]

#: most tracebacks of emulator bugs kept for GET /_emulator/health
SERVER_ERRORS_KEPT = 100


class Emulator:
    """One emulated API in One account space: tasks, balances, journal, clock and randomness."""

    def __init__(self, config: Config | None = None, catalogue: Catalogue | None = None) -> None:
        self.config = config or Config()
        self.catalogue = catalogue or Catalogue.default()
        self.seed = self.config.seed if self.config.seed is not None else secrets.randbits(32)
        self.clock: Clock = VirtualClock() if self.config.clock == "virtual" else RealClock()
        self.rng = random.Random(self.seed)
        #: task ids: drawn from the seed when the user gave one (the same ids on every run),
        #: else unpredictable, so the seed that health prints tells nobody another key's ids
        #: (image URLs need no key)
        self._id_bits = self.rng.getrandbits if self.config.seed is not None else secrets.randbits
        self.ledger = Ledger(self.config.default_credits, dict(self.config.keys))
        self.journal = Journal(self.config.journal_size)
        self.tasks = TaskStore(
            clock=self.clock.now,
            ttl_s=self.config.task_ttl_s,
            max_tasks=self.config.max_tasks,
            on_finish=self._finished,
            on_drop=self._forget,
        )
        self.media = Media(
            self.tasks, self.clock.now, self.config.image_cache_bytes, self.catalogue
        )
        self.webhooks = WebhookDispatcher(self, backoff_s=self.config.webhook_backoff_s)
        self.authenticate = Authenticator(
            self.ledger.knows if self.config.only_known_keys else None
        )
        self.scenarios = ScenarioSelection(
            self.config.scenario,
            self.config.key_scenarios,
            seed=self.seed,
            resolve_model=self._resolve_model,
            clock=self.clock.now,
        )
        #: file ``index`` of a finished task, as its scenario serves it (404 if none)
        self.file: Callable[..., Awaitable[MediaFile]] = self.media.file
        #: count a poll of a task and give its state now (the store's own operation)
        self.poll: Callable[[Task], TaskView] = self.tasks.poll
        #: tracebacks of emulator bugs, newest last (shown by GET /_emulator/health)
        self.server_errors: list[str] = []

    # -- scenarios ------------------------------------------------------------------------

    @property
    def scenario(self) -> ScenarioRuntime:
        """The server's scenario in use."""
        return self.scenarios.current

    def use_scenario(self, spec: ScenarioSpec) -> Scenario:
        """Make ``spec`` (ready name, YAML path, dict or Scenario) the server's scenario, a file
        read right here (the in-process fixtures, tests; a serving server's control API reads
        it in a worker thread: :meth:`ScenarioSelection.switch`)."""
        return self.scenarios.use(spec).scenario

    def _resolve_model(self, name: str) -> str | None:
        model = self.catalogue.resolve(name)
        return model.id if model else None

    # -- the image API --------------------------------------------------------------------

    def validate(
        self, body: dict[str, Any], *, strict: bool = False, route: Route | None = None
    ) -> CreateRequest:
        return validate_create(body, self.catalogue, strict=strict, route=route)

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
        runtime = runtime or self.scenario
        model = request.model
        if "input" in model.pixels:  # an image tool given an emulator file: its real size
            size = self._file_size(request.params.get("image"))
            if size is not None:
                request.width, request.height = model.pixel_size(request.params, size)
        if model.id == "grok-imagine/upscale":
            source = self.tasks.get(str(request.params["task_id"]))
            if source is None or source.key != key:  # a well-formed body naming a missing task
                raise NotFound(
                    f"task_id: no image task {request.params['task_id']!r} for this API key"
                )
        try:
            self.ledger.reserve(key, request.credits)
        except InsufficientCredits:  # refunds not settled yet may cover it: settle them all
            self.tasks.settle()
            self.ledger.reserve(key, request.credits)
        if script is None:
            script = self.default_script(request)
            if effect is not None:
                script = runtime.task_script(effect, script)
        now = self.clock.now()
        # positional, in field order (keywords: benchmarks/README.md)
        task = Task(
            self._new_id(model), key, model.id, request.params, now, script,
            self.rng.getrandbits(32), request.width, request.height, request.images,
            request.credits, str(request.params.get("prompt", "")),
        )  # fmt: skip
        if effect is not None:
            task.image = effect.image
        try:
            self.tasks.add(task, now)
        except StoreFull as full:
            self.ledger.refund(key, request.credits)
            raise store_full(full) from None
        callback = request.params.get("callback_url")
        if model.webhook and isinstance(callback, str):
            base = base_url() if callable(base_url) else base_url
            base = self.config.public_url or base or f"http://{self.config.host}:{self.config.port}"
            webhook = effect.webhook if effect is not None else None
            self.webhooks.register(task, callback, base, runtime.words, webhook)
        return task

    def _file_size(self, url: object) -> tuple[int, int] | None:
        """The pixel size of the image an emulator file URL names (``/files/{id}/{n}.{ext}``
        of a kept image task), else None: the emulator never fetches a URL."""
        if not isinstance(url, str) or FILES_PREFIX not in url:
            return None
        task_id, _, _ = url.split(FILES_PREFIX, 1)[1].partition("/")
        task = self.tasks.peek(task_id)
        if task is None or task.width < 1 or task.height < 1:
            return None
        model = self.catalogue.models.get(task.model)
        if model is not None and model.output.kind != "image":
            return None
        return task.width, task.height

    def default_script(self, request: CreateRequest) -> TaskScript:
        """Realistic timing: total uniform in the model's range, part of it queued."""
        timing = request.model.timing
        low, high = timing.queued_fraction
        total = timing.min_s + (timing.max_s - timing.min_s) * self.rng.random()
        queued = total * (low + (high - low) * self.rng.random())
        return TaskScript(queued, total - queued)

    def lookup(self, key: str, task_id: str) -> Task | None:
        """The key's task (None: unknown, forgotten, or another key's)."""
        task = self.tasks.get(task_id)
        return task if task is not None and task.key == key else None

    def task_body(
        self, task: Task, view: TaskView, base_url: str, words: StatusWords
    ) -> dict[str, Any]:
        """``data`` of GET /api/v1/tasks/{id}, image URLs under ``config.public_url`` if set,
        else under ``base_url`` (where the client reached the server)."""
        model = self.catalogue.models.get(task.model)
        return task_data(task, view, self.config.public_url or base_url, words, model)

    def callback_body(
        self, task: Task, view: TaskView, base_url: str, words: StatusWords
    ) -> dict[str, Any]:
        """``data`` of a task's webhook: the body of its documented status route (a music
        task's feed or upload-cover status, else ``/tasks/{id}``)."""
        model = self.catalogue.models.get(task.model)
        if model is not None and model.output.clips:
            from .music.wire import callback_data

            return callback_data(task, view, model, self.config.public_url or base_url)
        return self.task_body(task, view, base_url, words)

    def task_listing(self, base_url: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every task (of ``key``), oldest first: its wire body under the status words of the
        scenario that answers its key, plus ``key``, ``polls`` and ``state``. For the control
        API and tests."""
        now = self.clock.now()
        out: list[dict[str, Any]] = []
        for task in self.tasks.all():
            if key is None or task.key == key:
                view = observe(task, now)
                words = self.scenarios.for_key(task.key).words
                body = self.task_body(task, view, base_url, words)
                out.append(
                    {**body, "key": task.key, "polls": task.polls, "state": view.state.value}
                )
        return out

    # -- accounts -------------------------------------------------------------------------

    def account(self, key: str) -> Account:
        """``key``'s balance with every ended task settled (a read: opens no account)."""
        self.tasks.settle()
        return self.ledger.peek(key)

    def set_balance(self, key: str, credits: int) -> Account:
        self.tasks.settle()
        return self.ledger.set_balance(key, credits)

    def open_account(self, key: str) -> Account:
        """Make ``key`` known (as ``--keys`` does), with its starting balance if new."""
        return self.ledger.account(key)

    # -- time -----------------------------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move a virtual clock on by ``seconds`` and settle what ended meanwhile (409 on a
        real clock); the new time."""
        if not isinstance(self.clock, VirtualClock):
            raise APIError(
                "The clock is real and cannot be advanced. Start the emulator with "
                "--clock virtual.",
                status=409,
                type="invalid_request_error",
            )
        now = self.clock.advance(seconds)
        self.tasks.settle()
        self.webhooks.wake()  # deliveries waiting for this time (delay, retry backoff) go on
        return now

    def settle(self) -> None:
        """Settle every task that has ended and forget the expired ones."""
        self.tasks.settle()

    def advance_to_end(self) -> float:
        """Advance a virtual clock until every task has finished; the seconds moved.
        :class:`~emulator.tasks.EndlessTasks` names the tasks that never finish on their own."""
        now = self.clock.now()
        pending = [
            task
            for task in self.tasks.all()
            if task.finished_at is None and not observe(task, now).state.terminal
        ]
        endless = [task.id for task in pending if end_time(task) is None]
        if endless:
            raise EndlessTasks(endless)
        target = max((end_time(task) or now for task in pending), default=now)
        seconds = max(0.0, target - now)
        while now + seconds < target:  # float rounding must not stop a hair short of the end
            seconds = math.nextafter(seconds, math.inf)
        self.advance(seconds)
        return seconds

    # -- control --------------------------------------------------------------------------

    def reset(self, start: Loaded | None = None) -> None:
        """Back to the start: no tasks, default balances, empty journal, same seed, the start
        scenario (read again from its file: ``start``, which a server reads in a worker thread
        with :meth:`ScenarioSelection.read_start`, else right here); webhook deliveries in
        flight are cancelled. A start file that cannot be read any more raises ScenarioError
        and resets nothing."""
        if start is None:
            start = self.scenarios.load_start()
        self.webhooks.cancel_all()
        self.tasks.clear()
        self.ledger.reset()
        self.journal.clear()
        self.server_errors.clear()
        self.clock.reset()
        self.rng.seed(self.seed)
        self.scenarios.reset(start)

    def record_server_error(self, exc: BaseException) -> None:
        self.server_errors.append("".join(traceback.format_exception(exc)))
        del self.server_errors[:-SERVER_ERRORS_KEPT]

    # -- internals ------------------------------------------------------------------------

    def _new_id(self, model: Model) -> str:
        """An id of the model's documented shape (``n{node}{16 hex digits}_{tag}``, Suno's
        ``gen…bksv``), unique among kept tasks."""
        while True:
            task_id = model.id_format % self._id_bits(model.id_bits)
            if task_id not in self.tasks:
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
        """A task left the store (expired or evicted): its files leave the cache too."""
        self.media.forget(task)
        if task.finished_at is None:  # evicted before it ended: it will never be billed
            self.ledger.refund(task.key, task.credits)
