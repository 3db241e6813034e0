"""Generation tasks: the state machine queued -> running -> succeeded | failed, and the store.

A task never runs anything. Its state is a pure function of its script, its creation time, the
clock and how often it has been polled, so a virtual clock can move it and nothing runs in the
background. The store keeps tasks for a bounded time and count.
"""

from __future__ import annotations

import heapq
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (annotations only: scenarios imports the wire format, which imports this)
    from .scenarios import ImageEffect, WebhookEffect

__all__ = [
    "DEFAULT_MAX_TASKS",
    "DEFAULT_TASK_TTL_S",
    "EndlessTasks",
    "State",
    "StoreFull",
    "Task",
    "TaskScript",
    "TaskStore",
    "TaskView",
    "WebhookTarget",
    "observe",
]

DEFAULT_TASK_TTL_S = 3600.0
DEFAULT_MAX_TASKS = 10_000
#: most tasks settled or forgotten per request on the hot path (see TaskStore.settle)
HOT_SWEEP = 64


class EndlessTasks(ValueError):
    """Tasks that never finish on their own (a scenario made them run for ever)."""

    def __init__(self, task_ids: list[str]) -> None:
        super().__init__(
            f"{len(task_ids)} task(s) never finish on their own in this scenario: "
            f"{', '.join(task_ids)}"
        )
        self.task_ids = task_ids


class StoreFull(Exception):
    """The store holds ``max_tasks`` tasks and every one is still live: an acknowledged task is
    never forgotten to make room. ``retry_after_s``: until the next one ends (None: never)."""

    def __init__(self, max_tasks: int, retry_after_s: float | None) -> None:
        super().__init__(f"the store holds {max_tasks} live tasks")
        self.max_tasks = max_tasks
        self.retry_after_s = retry_after_s


class State(StrEnum):
    #: whether a task in this state has ended (succeeded or failed); a plain attribute, set
    #: below, since every poll asks it twice (benchmarks/README.md)
    terminal: bool

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


for _state in State:
    _state.terminal = _state in (State.SUCCEEDED, State.FAILED)
del _state


@dataclass(slots=True)  # immutable by convention (frozen: benchmarks/README.md)
class TaskScript:
    """How one task behaves over time. The default comes from the model's timing."""

    queued_s: float
    running_s: float
    outcome: State = State.SUCCEEDED
    error: str | None = None
    #: stay running forever (progress stops at 99)
    forever: bool = False
    #: fail (with ``error``) when polled for the n-th time, whatever the clock says
    fail_at_poll: int | None = None
    #: report progress in this many equal steps instead of every percent
    progress_steps: int | None = None

    @property
    def duration_s(self) -> float:
        return self.queued_s + self.running_s


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where and how a task's webhook goes (the task's ``callback_url``, as the create sent it)."""

    url: str
    #: base of the image URLs in the body: the create request's, or ``config.public_url``
    base_url: str
    #: ``data.status`` word per internal state (``State.value``), from the create's scenario
    words: Mapping[str, str]
    effect: WebhookEffect | None = None


@dataclass(slots=True)
class Task:
    id: str
    key: str
    model: str
    params: dict[str, Any]
    created_at: float
    script: TaskScript
    seed: int
    width: int
    height: int
    images: int
    credits: int
    prompt: str = ""
    polls: int = 0
    #: when the task reached its terminal state, once the store has seen it
    finished_at: float | None = None
    #: set when a poll-count rule ended the task early
    forced: tuple[State, float, int] | None = None
    #: how its images are served, when a scenario says otherwise than "serve"
    image: ImageEffect | None = None
    #: where its webhook goes, when the create gave a ``callback_url``
    webhook: WebhookTarget | None = None
    #: what each of its files is made of, once asked (media.RenderJob by (index, extension)):
    #: a download builds it once per file, not per request; never saved, never compared
    jobs: dict[tuple[int, str | None], Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)  # immutable by convention (frozen: benchmarks/README.md)
class TaskView:
    state: State
    progress: int
    updated_at: float
    error: str | None


def observe(task: Task, now: float) -> TaskView:
    """The task's state at time ``now`` (pure: does not change the task)."""
    script = task.script
    if task.forced is not None:
        state, at, progress = task.forced
        return TaskView(state, progress, at, script.error if state is State.FAILED else None)
    started = task.created_at + script.queued_s
    if now < started:
        return TaskView(State.QUEUED, 0, task.created_at, None)
    end = started + script.running_s  # the same sum as end_time(): no rounding disagreement
    if script.forever or now < end:
        progress = _progress(now - started, script)
        updated = started + (progress / 100) * script.running_s if script.running_s else started
        return TaskView(State.RUNNING, progress, min(updated, now), None)
    if script.outcome is State.FAILED:
        return TaskView(
            State.FAILED, _progress(script.running_s, script, cap=99), end, script.error
        )
    return TaskView(State.SUCCEEDED, 100, end, None)


def _progress(run: float, script: TaskScript, cap: int = 99) -> int:
    if script.running_s <= 0:
        return cap
    fraction = min(run / script.running_s, 1.0)
    if script.progress_steps:
        steps = script.progress_steps
        fraction = int(fraction * steps) / steps
    return max(1, min(cap, int(fraction * 100)))


def end_time(task: Task) -> float | None:
    """When the clock alone ends the task (None for a task that runs forever)."""
    if task.script.forever:
        return None
    end = task.created_at + task.script.queued_s + task.script.running_s
    # (a scripted infinite duration, or one too long to have a slot, never ends either)
    return end if end * SLOTS_PER_S != _NEVER else None


#: end times are kept in slots of ``1 / SLOTS_PER_S`` seconds: a forgotten task's end time
#: is removed at once (a heap kept the end times of tasks evicted before they ended until their
#: time came, for ever on a virtual clock nobody moves), and adding one costs no comparisons
SLOTS_PER_S = 20


class TaskStore:
    """Tasks by id, with the bookkeeping to settle them when they end and to forget them later.

    ``on_finish(task, state)`` is called exactly once per task, when the store first learns it
    has ended (when it settles, or on a poll); ``on_drop(task)`` when a task is forgotten.
    Ended tasks are settled in the order they ended (creation order for equal end times).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        ttl_s: float = DEFAULT_TASK_TTL_S,
        max_tasks: int = DEFAULT_MAX_TASKS,
        on_finish: Callable[[Task, State], None] = lambda t, s: None,
        on_drop: Callable[[Task], None] = lambda t: None,
    ) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_tasks = max_tasks
        self.on_finish = on_finish
        self.on_drop = on_drop
        self._tasks: dict[str, Task] = {}
        self._slots: dict[int, dict[str, float]] = {}  # slot -> {id: end time}, creation order
        self._slot_heap: list[int] = []  # the slot numbers in _slots (and a few emptied ones)
        self._finished: deque[tuple[float, str]] = deque()  # (finished_at, id), in finish order

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[Task]:
        """Every task as stored, oldest first (settling nothing: see :meth:`all`)."""
        return iter(self._tasks.values())

    def all(self) -> list[Task]:
        """Every task, oldest first, once everything that has ended is settled."""
        self.settle()
        return list(self._tasks.values())

    def get(self, task_id: str) -> Task | None:
        """The task ``task_id`` (None: unknown or forgotten), after a bounded settle."""
        if self._due(self.clock()):
            self.settle(limit=HOT_SWEEP)
        return self._tasks.get(task_id)

    def peek(self, task_id: str) -> Task | None:
        """The task ``task_id`` as stored, settling nothing."""
        return self._tasks.get(task_id)

    @property
    def finished(self) -> int:
        """How many kept tasks have finished (each is forgotten ``ttl_s`` after its end)."""
        return len(self._finished)

    @property
    def scheduled(self) -> int:
        """How many end times wait to be settled."""
        return sum(len(entries) for entries in self._slots.values())

    def _due(self, now: float) -> bool:
        """Whether :meth:`settle` has anything to do at ``now`` (checked without calling it:
        on most requests it has not)."""
        slots, finished = self._slot_heap, self._finished
        return bool(slots and slots[0] < int(now * SLOTS_PER_S)) or bool(
            finished and finished[0][0] + self.ttl_s <= now
        )

    def add(self, task: Task, now: float | None = None) -> None:
        """Keep ``task`` after a bounded settle, forgetting the oldest finished task when the
        store is full; :class:`StoreFull` (nothing kept) when every task it holds is live."""
        if now is None:
            now = self.clock()
        if self._due(now):
            self.settle(now, HOT_SWEEP)
        while len(self._tasks) >= self.max_tasks:
            self._evict_one(now)
        self._tasks[task.id] = task
        self._schedule(task)

    def restore(self, tasks: Iterable[Task], now: float | None = None) -> None:
        """Replace the contents with ``tasks`` (oldest first, as a state file kept them):
        finished ones expire on time, the others end and settle as if never stopped."""
        self.clear()
        finished: list[tuple[float, str]] = []
        for task in tasks:
            self._tasks[task.id] = task
            if task.finished_at is None:
                self._schedule(task)
            else:
                finished.append((task.finished_at, task.id))
        self._finished = deque(sorted(finished))
        self.settle(now)

    def poll(self, task: Task, now: float | None = None) -> TaskView:
        """Count a poll of ``task`` and return its state, applying poll-count rules."""
        if now is None:
            now = self.clock()
        task.polls += 1
        view = observe(task, now)
        script = task.script
        if (
            not view.state.terminal
            and script.fail_at_poll is not None
            and task.polls >= script.fail_at_poll
        ):
            task.forced = (State.FAILED, now, view.progress)
            view = observe(task, now)
        if view.state.terminal and task.finished_at is None:
            self._finish(task, view.state, view.updated_at)
        return view

    def settle(self, now: float | None = None, limit: int | None = None) -> bool:
        """Settle tasks the clock has ended (at ``now``, by default the clock's) and forget
        those past their retention time.

        ``limit`` bounds the work (reads on the request path pass one, so a batch of tasks
        that ended while the server idled is settled over a few requests, not in one 70 ms
        stall; it also leaves the current slot, 50 ms, until it has passed). Without a limit
        it is exact. True when the limit stopped it (there may be more to do).
        """
        if now is None:
            now = self.clock()
        budget = limit if limit is not None else -1
        slots = self._slots
        heap = self._slot_heap
        tasks = self._tasks
        current = int(now * SLOTS_PER_S)
        while heap and budget != 0:
            slot = heap[0]
            if slot >= current and (slot > current or limit is not None):
                break
            entries = slots.get(slot)
            if entries is None:  # emptied by evictions
                heapq.heappop(heap)
                continue
            ordered = sorted(entries.items(), key=_END)  # stable: creation order for equal ends
            done = 0
            for task_id, end in ordered:
                if end > now or budget == 0:
                    break
                done += 1
                task = tasks.get(task_id)
                if task is not None and task.finished_at is None:
                    # ended by the clock, so its script's outcome (poll-count endings are
                    # settled when they happen and have finished_at set)
                    self._finish(task, task.script.outcome, end)
                    budget -= 1
            if done == len(ordered):
                del slots[slot]
                heapq.heappop(heap)
            else:  # stopped by the budget or by end times still to come: keep the rest, sorted
                slots[slot] = dict(ordered[done:])
                break
        finished = self._finished
        while finished and finished[0][0] + self.ttl_s <= now and budget != 0:
            _, task_id = finished.popleft()
            task = tasks.pop(task_id, None)
            if task is not None:
                self._dropped(task)
                budget -= 1
        return budget == 0

    def clear(self) -> None:
        self._tasks.clear()
        self._slots.clear()
        self._slot_heap.clear()
        self._finished.clear()

    def _schedule(self, task: Task) -> None:
        end = end_time(task)
        if end is not None:
            slot = int(end * SLOTS_PER_S)
            entries = self._slots.get(slot)
            if entries is None:
                entries = self._slots[slot] = {}
                heapq.heappush(self._slot_heap, slot)
            entries[task.id] = end

    def _finish(self, task: Task, state: State, at: float) -> None:
        if task.finished_at is not None:
            return
        task.finished_at = at
        self._finished.append((at, task.id))
        self.on_finish(task, state)

    def _evict_one(self, now: float) -> None:
        """Make room: forget the oldest finished task, settling first if none has been; a store
        full of live tasks forgets none of them (:class:`StoreFull`)."""
        for attempt in range(2):
            while self._finished:
                _, task_id = self._finished.popleft()
                task = self._tasks.pop(task_id, None)
                if task is not None:
                    self._dropped(task)
                    return
            if attempt == 0:
                self.settle(now)  # tasks that ended but were not settled yet become finished
        raise StoreFull(self.max_tasks, self._next_end(now))

    def _next_end(self, now: float) -> float | None:
        """Seconds until the next scheduled task ends (None: none ever will)."""
        heap, slots = self._slot_heap, self._slots
        while heap and heap[0] not in slots:  # numbers of slots emptied by evictions
            heapq.heappop(heap)
        if not heap:
            return None  # (a full store refuses every create: never a scan of every task)
        return max(0.0, min(slots[heap[0]].values()) - now)

    def _dropped(self, task: Task) -> None:
        """``task`` has left the store: its end time goes too (if still waiting), then on_drop."""
        end = end_time(task) if task.finished_at is None else None  # (a settled task has none)
        if end is not None:
            slot = int(end * SLOTS_PER_S)
            entries = self._slots.get(slot)
            if entries is not None and entries.pop(task.id, None) is not None and not entries:
                del self._slots[slot]  # (its number leaves the heap when its time comes)
                if len(self._slot_heap) > 2 * len(self._slots) + 1024:
                    self._slot_heap = list(self._slots)
                    heapq.heapify(self._slot_heap)
        self.on_drop(task)


_END = operator.itemgetter(1)
_NEVER = float("inf")
