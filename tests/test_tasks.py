"""The task state machine and store, as plain values (no HTTP)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.tasks import State, StoreFull, Task, TaskScript, TaskStore, observe


def make_task(task_id: str = "t1", created: float = 100.0, **script) -> Task:
    script.setdefault("queued_s", 1.0)
    script.setdefault("running_s", 4.0)
    return Task(
        id=task_id, key="aio_k", model="cogview-4", params={}, created_at=created,
        script=TaskScript(**script), seed=1, width=8, height=8, images=1, credits=4,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("at", "state", "progress"),
    [
        (100.0, State.QUEUED, 0),
        (100.99, State.QUEUED, 0),
        (101.0, State.RUNNING, 1),
        (103.0, State.RUNNING, 50),
        (104.99, State.RUNNING, 99),
        (105.0, State.SUCCEEDED, 100),
        (9999.0, State.SUCCEEDED, 100),
    ],
)
def test_states_follow_the_script(at: float, state: State, progress: int) -> None:
    view = observe(make_task(), at)
    assert (view.state, view.progress) == (state, progress)


def test_failure_carries_the_reason_and_stops_short_of_100() -> None:
    view = observe(make_task(outcome=State.FAILED, error="content policy"), 200.0)
    assert view.state is State.FAILED
    assert view.error == "content policy"
    assert view.progress == 99
    assert view.updated_at == 105.0


def test_forever_never_ends() -> None:
    view = observe(make_task(forever=True), 1e9)
    assert view.state is State.RUNNING and view.progress == 99


def test_progress_steps_quantise_progress() -> None:
    task = make_task(queued_s=0, running_s=10, progress_steps=4)
    assert [observe(task, 100 + t).progress for t in (1, 3, 6, 8)] == [1, 25, 50, 75]


def test_fail_at_poll_fails_on_that_poll_whatever_the_clock() -> None:
    finished = []
    store = TaskStore(on_finish=lambda t, s: finished.append(s))
    task = make_task(fail_at_poll=3, error="boom")
    store.add(task, 100.0)
    states = [store.poll(task, 100.5).state for _ in range(4)]
    assert states == [State.QUEUED, State.QUEUED, State.FAILED, State.FAILED]
    assert finished == [State.FAILED]


@given(
    queued=st.floats(0, 100),
    running=st.floats(0, 100),
    times=st.lists(st.floats(0, 300), min_size=1, max_size=30),
    outcome=st.sampled_from([State.SUCCEEDED, State.FAILED]),
    steps=st.none() | st.integers(1, 20),
)
def test_progress_is_monotonic_and_the_end_is_one_terminal_state(
    queued, running, times, outcome, steps
) -> None:
    task = make_task(queued_s=queued, running_s=running, outcome=outcome, progress_steps=steps)
    views = [observe(task, 100 + t) for t in sorted(times)]
    assert [v.progress for v in views] == sorted(v.progress for v in views)
    assert all(0 <= v.progress <= 100 for v in views)
    terminal = {v.state for v in views if v.state.terminal}
    assert terminal <= {outcome}
    order = [State.QUEUED, State.RUNNING, outcome]
    assert [order.index(v.state) for v in views] == sorted(order.index(v.state) for v in views)


def test_store_settles_each_task_once_when_the_clock_ends_it() -> None:
    finished: list[tuple[str, State]] = []
    store = TaskStore(on_finish=lambda t, s: finished.append((t.id, s)))
    store.add(make_task("a"), 100.0)
    store.add(make_task("b", outcome=State.FAILED), 100.0)
    store.settle(104.0)
    assert finished == []
    store.settle(106.0)
    store.settle(107.0)
    assert sorted(finished) == [("a", State.SUCCEEDED), ("b", State.FAILED)]


def test_finished_tasks_expire_after_the_ttl() -> None:
    dropped: list[str] = []
    store = TaskStore(ttl_s=60, on_drop=lambda t: dropped.append(t.id))
    store.add(make_task("a"), 100.0)  # ends at 105
    store.settle(164.9)
    assert "a" in store
    store.settle(165.0)
    assert "a" not in store and dropped == ["a"]


def test_store_is_bounded_evicting_finished_tasks_and_never_a_live_one() -> None:
    dropped: list[str] = []
    store = TaskStore(max_tasks=3, on_drop=lambda t: dropped.append(t.id))
    store.add(make_task("done", created=0.0), 0.0)
    store.add(make_task("run1", created=99.0, running_s=100), 99.0)
    store.add(make_task("run2", created=99.0, running_s=100), 99.0)
    store.add(make_task("new", created=100.0, running_s=100), 100.0)
    assert dropped == ["done"]
    with pytest.raises(StoreFull) as full:
        store.add(make_task("newer", created=100.0), 100.0)
    assert dropped == ["done"] and "newer" not in store and len(store) == 3
    assert full.value.retry_after_s == pytest.approx(100.0)  # run1 ends at 99 + 1 + 100
    store.add(make_task("later", created=205.0), 205.0)  # run1 and run2 have ended by now
    assert dropped == ["done", "run1"] and len(store) == 3


def test_memory_stays_bounded_however_many_tasks() -> None:
    store = TaskStore(ttl_s=10, max_tasks=500)
    for i in range(20_000):
        store.add(make_task(f"t{i}", created=float(i)), float(i))
    assert len(store) <= 500
    assert len(store._finished) <= 500 + 20
    assert store.scheduled <= 500 + 20


def test_a_store_full_of_live_tasks_keeps_them_all_and_refuses_more() -> None:
    """A clock that does not move (a virtual clock nobody advances) or a create rate that fills
    the store faster than tasks end: no acknowledged task is forgotten, nothing piles up."""
    dropped: list[str] = []
    store = TaskStore(max_tasks=100, on_drop=lambda t: dropped.append(t.id))
    for i in range(100):
        store.add(make_task(f"t{i}", created=0.0), 0.0)
    for i in range(100, 1000):
        with pytest.raises(StoreFull):
            store.add(make_task(f"t{i}", created=0.0), 0.0)
    assert len(store) == 100 and dropped == []
    assert store.scheduled == 100 and len(store._slot_heap) <= 200
    store.settle(10.0)  # the kept ones still end and settle
    assert all(task.finished_at == 5.0 for task in store)


@given(
    running=st.lists(st.floats(0.0, 500.0), min_size=1, max_size=30),
    finished_first=st.integers(0, 5),
)
def test_a_full_store_tells_when_its_first_live_task_ends(
    running: list[float], finished_first: int
) -> None:
    """Retry-After of a full store: the time until its earliest live task ends, once the
    finished ones have been evicted to make room (their slots emptied)."""
    store = TaskStore(max_tasks=len(running))
    for i in range(finished_first):  # ended at once, forgotten when the live ones arrive
        store.add(make_task(f"done{i}", created=0.0, queued_s=0.0, running_s=0.0), 0.0)
    for i, seconds in enumerate(running):
        store.add(make_task(f"live{i}", created=10.0, running_s=seconds), 10.0)
    with pytest.raises(StoreFull) as full:
        store.add(make_task("more", created=10.0), 10.0)
    assert full.value.retry_after_s == pytest.approx(1.0 + min(running))


@given(
    created=st.floats(0, 2e9),
    queued=st.floats(0, 100),
    running=st.floats(0, 100),
)
def test_at_its_end_time_a_task_has_ended(created, queued, running) -> None:
    """The store settles a task at end_time(); observe must agree it has ended (a float
    rounding disagreement once refunded tasks that then reported completed)."""
    from emulator.tasks import end_time

    task = make_task(created=created, queued_s=queued, running_s=running)
    assert observe(task, end_time(task)).state is State.SUCCEEDED


def test_a_bounded_sweep_spreads_a_backlog_over_several_calls() -> None:
    finished: list[str] = []
    store = TaskStore(on_finish=lambda t, s: finished.append(t.id))
    for i in range(200):
        store.add(make_task(f"t{i}", created=0.0), 0.0)
    store.settle(100.0, limit=64)
    assert len(finished) == 64
    store.settle(100.0, limit=64)
    assert len(finished) == 128
    store.settle(100.0)
    assert len(finished) == 200 and len(set(finished)) == 200


def test_tasks_settle_in_the_order_they_end_then_in_creation_order() -> None:
    finished: list[str] = []
    store = TaskStore(on_finish=lambda t, s: finished.append(t.id))
    ends = {"a": 5.04, "b": 5.01, "c": 5.01, "d": 4.0, "e": 5.03,  # a, b, c, e: one 50 ms slot
            "f": 9.0, "g": 6.01, "h": 6.0, "i": 6.02}  # fmt: skip
    for task_id, end in ends.items():
        store.add(make_task(task_id, created=0.0, queued_s=0.0, running_s=end), 0.0)
    store.settle(5.035, limit=64)  # the hot path leaves the slot of "now" until it has passed
    assert finished == ["d"]
    store.settle(5.035)  # a full sweep is exact
    assert finished == ["d", "b", "c", "e"]  # "a" ends at 5.04: not yet
    store.settle(7.0, limit=2)  # stops after two, in the middle of a slot...
    assert finished == ["d", "b", "c", "e", "a", "h"]
    store.settle(7.0, limit=2)  # ...and goes on from there
    assert finished == ["d", "b", "c", "e", "a", "h", "g", "i"]
    store.settle(20.0)
    assert finished[-1] == "f" and store.scheduled == 0
    assert {task.id: task.finished_at for task in store} == ends


@given(ends=st.lists(st.floats(0, 30), min_size=1, max_size=40), step=st.floats(0.01, 5))
def test_a_full_sweep_settles_exactly_the_tasks_that_have_ended(ends, step) -> None:
    """Whatever the slots: after a full sweep at ``now``, a task is settled iff it has ended
    by ``now``, and settled tasks came in end-time order."""
    settled: list[float] = []
    store = TaskStore(on_finish=lambda t, s: settled.append(t.finished_at))
    for i, end in enumerate(ends):
        store.add(make_task(f"t{i}", created=0.0, queued_s=0.0, running_s=end), 0.0)
    now = 0.0
    while now < 31:
        store.settle(now, limit=3)  # the hot path's bounded sweeps may lag...
        store.settle(now)  # ...a full one never does
        assert all((task.finished_at is not None) == (end <= now) for task, end in
                   zip(store, ends, strict=True))  # fmt: skip
        now += step
    store.settle(31.0)
    assert settled == sorted(settled) and len(settled) == len(ends)


def test_an_infinite_scripted_duration_never_ends_and_breaks_nothing() -> None:
    """A scenario may say ``running: .inf`` (YAML's infinity): such a task runs for ever."""
    store = TaskStore(max_tasks=2)
    store.add(make_task("inf", created=0.0, running_s=float("inf")), 0.0)
    store.add(make_task("huge", created=0.0, running_s=1.7e308), 0.0)  # overflows as a slot
    store.settle(1e12)
    assert all(task.finished_at is None for task in store) and store.scheduled == 0
    assert observe(store.get("inf"), 1e12).state is State.RUNNING
    with pytest.raises(StoreFull) as full:  # live for ever: never forgotten to make room
        store.add(make_task("next", created=0.0), 0.0)
    assert full.value.retry_after_s is None and [t.id for t in store] == ["inf", "huge"]
    from emulator.clock import VirtualClock
    from emulator.tasks import end_time

    assert end_time(make_task(running_s=float("inf"))) is None  # settle() names it, not waits
    with pytest.raises(ValueError, match="finite"):
        VirtualClock().advance(float("inf"))
