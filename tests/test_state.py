"""The state file: snapshot/restore, atomic saves, refusing a bad file, kill -9 and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import state
from emulator.app import create_app
from emulator.config import Config
from emulator.scenarios import ImageEffect, TaskEffect, WebhookEffect
from emulator.scenarios.model import IMAGE_MODES
from emulator.service import Emulator
from emulator.tasks import State, Task, TaskScript, WebhookTarget

from .conftest import AUTH, Client

CREDITS = 1_000_000


def _emulator(**config) -> Emulator:
    config.setdefault("seed", 9)
    config.setdefault("clock", "virtual")
    config.setdefault("allowed_hosts", ("emulator.test",))
    return Emulator(Config(**config))


def test_snapshot_round_trip_keeps_every_task_field_balances_clock_journal_and_rng() -> None:
    first = _emulator()
    client = Client(create_app(emulator=first), base_url="http://emulator.test")
    ids = [client.create(prompt=f"task {i} <b>&</b> \u202e \U0001f98a").json()["data"]["task_id"]
           for i in range(3)]  # fmt: skip
    effect = TaskEffect(image=ImageEffect("expire", 12.5))
    request = first.validate({"model": "cogview-4", "prompt": "with an effect"})
    ids.append(first.create_task("aio_other", request, effect=effect).id)
    client.advance(3)
    client.poll(ids[0])
    first.tasks.get(ids[1]).forced = (State.FAILED, first.clock.now(), 42)
    client.advance(60)
    client.poll(ids[2])
    payload = state.dump(first)

    second = _emulator(seed=123)  # the saved seed wins
    state.restore(second, json.loads(payload))
    assert second.seed == 9 and second.clock.now() == first.clock.now()
    assert [t.id for t in second.tasks] == [t.id for t in first.tasks]
    for old in first.tasks:
        assert second.tasks.get(old.id) == old  # dataclass equality: every field
    assert second.tasks.get(ids[3]).image == ImageEffect("expire", 12.5)
    assert {k: a.as_dict() for k, a in second.ledger.accounts.items()} == {
        k: a.as_dict() for k, a in first.ledger.accounts.items()
    }
    assert list(second.journal) == list(first.journal)
    assert second.rng.getstate() == first.rng.getstate()
    assert state.dump(second) == payload  # restoring and saving again changes nothing
    # both continue identically: same next task id
    r1 = first.create_task("aio_k", request)
    r2 = second.create_task("aio_k", request)
    assert r1.id == r2.id


def test_client_data_that_looks_like_saved_objects_stays_data() -> None:
    first = _emulator()
    client = Client(create_app(emulator=first), base_url="http://emulator.test")
    client.check_schema = False
    hostile = {"$dc": "emulator.scenarios:ImageEffect", "fields": {"mode": "404"}, "$tuple": [1]}
    client.create(extra=hostile)
    second = _emulator()
    state.restore(second, json.loads(state.dump(first)))
    assert list(second.journal)[-1]["body"] == list(first.journal)[-1]["body"]
    assert list(second.journal)[-1]["body"]["extra"] == hostile


def test_restored_tasks_finish_and_settle_and_finished_ones_still_expire() -> None:
    first = _emulator(task_ttl_s=100)
    request = first.validate({"model": "cogview-4", "prompt": "a fox"})
    running = first.create_task("aio_a", request)
    first.clock.advance(60)
    done = first.create_task("aio_a", request)
    first.clock.advance(60)
    first.tasks.settle(first.clock.now())
    assert done.finished_at is not None and running.finished_at is not None
    second = _emulator(task_ttl_s=100)
    state.restore(second, json.loads(state.dump(first)))
    account = second.ledger.account("aio_a")
    assert account.reserved == 0 and account.spent == 2 * request.credits
    second.clock.advance(40)  # the first task ended ~155 s ago (past 100 s), the second ~95 s
    second.tasks.settle(second.clock.now())
    assert running.id not in second.tasks and done.id in second.tasks


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    state.save(target, b'{"new": true}')
    assert target.read_bytes() == b'{"new": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_autosaver_writes_only_when_something_changed(tmp_path: Path) -> None:
    emulator = _emulator()
    saver = state.Autosaver(emulator, str(tmp_path / "s.json"), 5)
    assert saver.save_now() is True
    assert saver.save_now() is False
    emulator.ledger.set_balance("aio_x", 5)
    assert saver.save_now() is True


def _file_id(path: Path) -> tuple[int, int]:
    """What a save changes: a save renames a new file over the old one (a new inode)."""
    info = os.stat(path)
    return info.st_ino, info.st_mtime_ns


@pytest.mark.parametrize("clock", ["virtual", "real"])
def test_an_idle_interval_takes_no_snapshot_and_any_change_is_saved_at_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    import asyncio

    snapshots = []
    take = state.take_snapshot
    monkeypatch.setattr(state, "take_snapshot", lambda e: snapshots.append(1) or take(e))
    emulator = _emulator(clock=clock, scenario="instant", task_ttl_s=1e6)
    client = Client(create_app(emulator=emulator), base_url="http://emulator.test")
    path = tmp_path / "s.json"
    saver = state.Autosaver(emulator, str(path), 5)
    task_id = client.create().json()["data"]["task_id"]
    changes = {
        "create": lambda: client.create(),
        "poll": lambda: client.poll(task_id),
        "credits": lambda: client.put("/_emulator/keys/aio_x", json={"credits": 7}),
        "a task settled between requests": emulator.settle,  # (what housekeeping does)
        "journal cleared": lambda: client.delete("/_emulator/requests"),
        "reset": lambda: client.post("/_emulator/reset"),
    }
    if clock == "virtual":
        changes["clock advanced"] = lambda: client.advance(30)
        changes["reset after an advance"] = lambda: (
            client.advance(5),
            client.post("/_emulator/reset"),
        )

    async def run() -> None:
        assert await saver.save()
        for what, change in changes.items():
            before, taken = _file_id(path), len(snapshots)
            for _ in range(3):  # nothing happens: no snapshot, no write
                assert not await saver.save(), what
            assert len(snapshots) == taken and _file_id(path) == before, what
            if what == "a task settled between requests":
                client.create()  # ended (instant) but not settled: the file has it running
                assert await saver.save()
                if clock == "real":
                    time.sleep(0.01)  # it has ended
            change()
            assert await saver.save(), f"{what} was not saved"

    asyncio.run(run())
    assert saver.status["failures"] == 0


def test_a_live_server_rewrites_no_file_while_nothing_happens(tmp_path: Path) -> None:
    """On the real clock its time moves on, and used to rewrite the file every interval."""
    from emulator.server import LiveServer

    path = tmp_path / "s.json"
    config = Config(seed=1, clock="real", state_file=str(path), state_interval_s=0.02)
    with LiveServer(create_app(config)) as live:
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        first = _file_id(path)
        time.sleep(0.3)  # 15 intervals
        assert _file_id(path) == first
        httpx.post(
            live.url + "/api/v1/images/generations",
            json={"model": "cogview-4", "prompt": "saved at the next interval"},
            headers=AUTH,
        )
        while "saved at the next interval" not in path.read_text():
            assert time.monotonic() < deadline + 5, "the create was never saved"
            time.sleep(0.02)


# -- the command line ---------------------------------------------------------------------------


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+) ", line)
    if not match:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"did not start: {line!r} {err}")
    return proc, match.group(1)


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    return proc.returncode


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(b'{"format": "aio-emulator-state", "vers', "damaged", id="truncated"),
        pytest.param(b"\xff\xfe garbage", "damaged", id="binary"),
        pytest.param(b"[1, 2]", "not an aio-emulator state file", id="not-an-object"),
        pytest.param(b'{"format": "aio-emulator-state", "version": 99}', "version 99", id="newer"),
        pytest.param(
            b'{"format": "aio-emulator-state", "version": 1, "clock": {"mode": "real"}}',
            "damaged state file",
            id="missing-fields",
        ),
    ],
)
def test_a_bad_state_file_stops_start_up_and_is_left_untouched(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    before = path.stat()
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert needle in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == content and path.stat().st_mtime_ns == before.st_mtime_ns


def test_a_state_file_of_the_other_clock_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, state.dump(_emulator()))
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--clock virtual" in done.stderr


def _scenario(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def test_sigkill_then_restart_keeps_every_saved_task_and_balances(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path, "name: short\ndefaults:\n  task:\n    queued: 0.3\n    running: 1.5\n"
    )
    path = tmp_path / "state.json"
    args = ("--state-file", str(path), "--state-interval", "0.2", "--scenario", scenario)
    proc, url = _serve(*args)
    created: dict[str, str] = {}
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in range(12):
                key = f"aio_k{i % 3}"
                r = c.post(
                    "/api/v1/images/generations",
                    json={"model": "cogview-4", "prompt": f"task {i}"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 200, r.text
                created[r.json()["data"]["task_id"]] = key
            c.put("/_emulator/keys/aio_k0", json={"credits": 500})
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # wait for a save holding every task
                if path.exists() and all(t in path.read_text() for t in created):
                    break
                time.sleep(0.05)
            saved = json.loads(path.read_text())
    finally:
        proc.kill()  # SIGKILL: no shutdown save
        proc.communicate(timeout=10)
    assert {t["id"] for t in saved["tasks"]} == set(created)
    proc, url = _serve(*args)
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            first = c.get(
                f"/api/v1/tasks/{next(iter(created))}",
                headers={"Authorization": f"Bearer {created[next(iter(created))]}"},
            ).json()["data"]
            assert first["status"] in ("IN_PROGRESS", "completed")
            pending = dict(created)
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for task_id, key in list(pending.items()):
                    r = c.get(
                        f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
                    )
                    assert r.status_code == 200, r.text
                    if r.json()["data"]["status"] == "completed":
                        del pending[task_id]
                time.sleep(0.1)
            assert not pending, f"never completed after the restart: {pending}"
            for i in range(3):
                account = c.get(f"/_emulator/keys/aio_k{i}").json()
                count = sum(1 for k in created.values() if k == f"aio_k{i}")
                assert account["reserved"] == 0 and account["spent"] == 4 * count
                start = 500 + 4 * count if i == 0 else CREDITS  # set_balance moved it
                assert account["credits"] + account["spent"] == start
    finally:
        assert _stop(proc) == 0


def test_sigterm_finishes_the_request_in_flight_saves_and_exits_0(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path,
        "name: slow-polls\ndefaults:\n  task: {queued: 0, running: 0}\n"
        "rules:\n  - match: {endpoint: task}\n    latency: 1000\n",
    )
    path = tmp_path / "state.json"
    proc, url = _serve("--state-file", str(path), "--state-interval", "60", "--scenario", scenario)
    answer: dict[str, object] = {}
    try:
        r = httpx.post(
            url + "/api/v1/images/generations",
            json={"model": "cogview-4", "prompt": "in flight"},
            headers=AUTH,
        )
        task_id = r.json()["data"]["task_id"]

        def poll() -> None:
            started = time.monotonic()
            got = httpx.get(f"{url}/api/v1/tasks/{task_id}", headers=AUTH, timeout=10)
            answer.update(status=got.status_code, body=got.json(), took=time.monotonic() - started)

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        thread.join(10)
    finally:
        code = _stop(proc)
    assert code == 0
    assert answer["status"] == 200 and answer["took"] >= 0.9
    assert answer["body"]["data"]["status"] == "completed"  # type: ignore[index]
    saved = json.loads(path.read_text())
    assert [t["id"] for t in saved["tasks"]] == [task_id]
    assert saved["tasks"][0]["polls"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_state_file_of_format_version_1_restores_every_task_balance_clock_and_entry() -> None:
    """tests/data/state-v1.json was written by release 0.1.0 (tests/data/make_state_v1.py.txt)."""
    path = Path(__file__).parent / "data" / "state-v1.json"
    saved = json.loads(path.read_text())
    emulator = _emulator(seed=1)
    assert state.load_into(emulator, path)
    assert emulator.seed == 9 and emulator.clock.now() == saved["clock"]["now"]
    assert [t.id for t in emulator.tasks] == [t["id"] for t in saved["tasks"]]
    by_id = {t.id: t for t in emulator.tasks}
    for raw in saved["tasks"]:
        task = by_id[raw["id"]]
        assert (task.key, task.model, task.prompt, task.width, task.height, task.credits) == (
            raw["key"], raw["model"], raw["prompt"], raw["width"], raw["height"], raw["credits"]
        )  # fmt: skip
        assert task.params == raw["params"] and task.polls == raw["polls"]
    assert [t.image for t in emulator.tasks if t.image] == [ImageEffect("expire", 12.5)]
    (hooked,) = [t for t in emulator.tasks if t.webhook]
    assert hooked.webhook.url == "http://127.0.0.1:9/hook"
    assert hooked.webhook.effect is not None and hooked.webhook.effect.duplicate
    balances = {k: (a.balance, a.reserved, a.spent) for k, a in emulator.ledger.accounts.items()}
    assert balances == {k: (b, r, s) for k, b, r, s in saved["accounts"]}
    entries = list(emulator.journal)
    assert [e["seq"] for e in entries] == [e["seq"] for e in saved["journal"]["entries"]]
    assert entries[0]["body"] == {
        "prompt": "task 0 <b>&</b> \u202e \U0001f98a",
        "model": "cogview-4",
    }
    assert emulator.journal.seq == saved["journal"]["seq"]


# -- nothing is silently lost (issue 15) ---------------------------------------------------------

V1 = Path(__file__).parent / "data" / "state-v1.json"
SURROGATE = b'{"model": "cogview-4", "prompt": "abc \\ud800 def"}'


def _create_raw(client: Client, body: bytes) -> str:
    r = client.post(
        "/api/v1/images/generations",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["task_id"]


def test_any_prompt_a_create_accepts_can_be_saved_and_comes_back() -> None:
    first = _emulator()
    client = Client(create_app(emulator=first), base_url="http://emulator.test")
    task_id = _create_raw(client, SURROGATE)
    payload = state.dump(first)
    second = _emulator()
    state.restore(second, json.loads(payload))
    assert second.tasks.get(task_id).prompt == "abc \ud800 def"
    assert second.tasks.get(task_id) == first.tasks.get(task_id)


def test_the_autosave_loop_survives_failures_retries_and_reports_them(tmp_path: Path) -> None:
    import asyncio
    import shutil

    folder = tmp_path / "gone"
    emulator = _emulator()
    Client(create_app(emulator=emulator), base_url="http://emulator.test").create()
    saver = state.Autosaver(emulator, str(folder / "s.json"), 0.01)

    async def run() -> tuple[dict[str, object], dict[str, object]]:
        loop = asyncio.create_task(saver.run())
        await asyncio.sleep(0.1)  # the folder does not exist: every save fails
        failing = dict(saver.status)
        emulator.ledger.set_balance("aio_late", 7)
        folder.mkdir()
        saved = folder / "s.json"
        for _ in range(300):  # (a save in flight since before the change may land first)
            await asyncio.sleep(0.01)
            if saver.status["failures"] == 0 and saved.exists() and "aio_late" in saved.read_text():
                break
        assert not loop.done()
        loop.cancel()
        return failing, dict(saver.status)

    failing, healthy = asyncio.run(run())
    assert failing["file"] == str(folder / "s.json") and failing["last_saved"] is None
    assert failing["failures"] >= 2 and "No such file" in str(failing["last_error"])
    assert healthy["failures"] == 0 and healthy["last_error"] is None and healthy["last_saved"]
    assert "aio_late" in (folder / "s.json").read_text()
    shutil.rmtree(folder)


def test_a_surrogate_prompt_does_not_end_persistence(tmp_path: Path) -> None:
    import asyncio

    emulator = _emulator()
    client = Client(create_app(emulator=emulator), base_url="http://emulator.test")
    saver = state.Autosaver(emulator, str(tmp_path / "s.json"), 0.01)

    async def run() -> None:
        loop = asyncio.create_task(saver.run())
        _create_raw(client, SURROGATE)
        await asyncio.sleep(0.1)
        client.create(prompt="after the surrogate")
        await asyncio.sleep(0.1)
        assert not loop.done()
        loop.cancel()

    asyncio.run(run())
    assert "after the surrogate" in (tmp_path / "s.json").read_text()
    assert saver.status["failures"] == 0


def _stall_benchmark():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "state_stall.py"
    spec = importlib.util.spec_from_file_location("state_stall", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saving_a_big_state_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """10,000 tasks and a full journal (57 MB): the loop is held only for the snapshot (it was
    held 480-580 ms for the whole encoding)."""
    import asyncio

    bench = _stall_benchmark()
    emulator = bench.big_emulator(10_000)
    stalls = []
    for _ in range(3):  # the best of three: the machine running the tests is shared
        saver = state.Autosaver(emulator, str(tmp_path / "s.json"), 60)
        stalls.append(asyncio.run(bench.measure(saver))[0])
        if stalls[-1] < 0.15:
            break
    assert os.path.getsize(tmp_path / "s.json") > 50_000_000
    assert min(stalls) < 0.15, f"the loop stalled {[round(s * 1000) for s in stalls]} ms"


def test_an_unwritable_state_location_stops_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for target in (tmp_path / "missing" / "s.json", blocker / "s.json", tmp_path):
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", "0", "--state-file", str(target)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"started with an unwritable state file {target}") from None
        assert proc.returncode == 2, err
        assert str(target) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_a_failed_final_save_exits_non_zero_without_a_traceback(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "state"
    folder.mkdir()
    proc, url = _serve("--state-file", str(folder / "s.json"), "--state-interval", "60")
    httpx.post(
        url + "/api/v1/images/generations",
        json={"model": "cogview-4", "prompt": "never saved"},
        headers=AUTH,
    )
    shutil.rmtree(folder)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "could not save" in line], err


def test_health_shows_the_state_file(tmp_path: Path) -> None:
    from emulator.server import LiveServer

    path = tmp_path / "s.json"
    app = create_app(Config(seed=1, clock="virtual", state_file=str(path), state_interval_s=0.05))
    with LiveServer(app) as live:
        httpx.post(
            live.url + "/api/v1/images/generations",
            json={"model": "cogview-4", "prompt": "saved"},
            headers=AUTH,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            saved = httpx.get(live.url + "/_emulator/health").json()["state"]
            if saved["last_saved"]:
                break
            time.sleep(0.05)
    assert saved["file"] == str(path) and saved["failures"] == 0
    assert saved["last_error"] is None and saved["last_saved"].endswith("Z")


def _v1() -> dict:
    return json.loads(V1.read_text())


def _damage(change):
    def make() -> dict:
        data = _v1()
        change(data)
        return data

    return make


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


DAMAGED = [
    pytest.param(_damage(lambda d: d["clock"].update(now=None)), "clock.now", id="now-null"),
    pytest.param(
        _damage(lambda d: d["tasks"][0].update(created_at=float("nan"))),
        "tasks[0].created_at",
        id="nan-created-at",
    ),
    pytest.param(
        _damage(lambda d: d["tasks"][1].update(model="cogview-9")),
        "tasks[1].model: 'cogview-9' is not a model",
        id="unknown-model",
    ),
    pytest.param(
        _damage(lambda d: d["accounts"][0].__setitem__(1, -5)), "accounts[0]", id="negative-credits"
    ),
    pytest.param(
        _damage(lambda d: d["tasks"][2].update(polls="1")), "tasks[2].polls", id="wrong-type"
    ),
    pytest.param(
        _damage(lambda d: d["tasks"][0].update(params=_nest(600))), "tasks[0].params", id="600-deep"
    ),
    pytest.param(
        _damage(lambda d: d["tasks"][4]["extra"]["image"].update({"$dc": "os:system"})),
        "tasks[4].extra",
        id="foreign-class",
    ),
    pytest.param(
        _damage(lambda d: d["accounts"][0].__setitem__(2, 99)),
        "reserved",
        id="reserved-not-matching-tasks",
    ),
    pytest.param(_damage(lambda d: d["tasks"].append(d["tasks"][0])), "twice", id="duplicate-task"),
    pytest.param(_damage(lambda d: d["rng"].__setitem__(1, [1, 2])), "rng", id="bad-rng"),
    pytest.param(
        _damage(lambda d: d["journal"]["entries"][0].update(seq="x")),
        "journal.entries[0].seq",
        id="bad-entry",
    ),
    pytest.param(
        _damage(lambda d: d["journal"]["entries"][0].update(response="[1]")),
        "journal.entries[0].response: expected an object",
        id="chat-answer-not-an-object",
    ),
    pytest.param(
        _damage(lambda d: d["journal"]["entries"][0].update(response="{no")),
        "journal.entries[0].response: expected JSON text",
        id="chat-answer-not-json",
    ),
    pytest.param(
        _damage(lambda d: d["journal"]["entries"][0].update(response=_nest(100))),
        "journal.entries[0].response: nested more than",
        id="chat-answer-100-deep",
    ),
]


@pytest.mark.parametrize(("make", "needle"), DAMAGED)
def test_a_damaged_or_hand_edited_file_is_refused_whole(tmp_path: Path, make, needle) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(make()))
    before = path.read_bytes()
    emulator = _emulator(seed=1)
    with pytest.raises(state.StateError) as caught:
        state.load_into(emulator, path)
    message = str(caught.value)
    assert needle in message and str(path) in message and "\n" not in message
    assert len(emulator.tasks) == 0 and not emulator.ledger.accounts and not len(emulator.journal)
    assert emulator.seed == 1 and emulator.clock.now() == emulator.clock.start
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(DAMAGED[0].values[0], id="now-null"),
        pytest.param(DAMAGED[5].values[0], id="600-deep"),
    ],
)
def test_a_damaged_file_is_one_line_and_exit_2_from_the_cli(tmp_path: Path, make) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(make()))
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--clock", "virtual",
         "--state-file", str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- format version 2 (issue 12) ----------------------------------------------------------------


def test_a_saved_file_names_no_python_module_or_class() -> None:
    emulator = _emulator()
    assert state.load_into(emulator, V1)
    text = state.dump(emulator).decode()
    data = json.loads(text)
    assert data["version"] == 2
    assert not re.search(r"\bemulator\.(?!test\b)", text)  # (http://emulator.test is data)
    assert "$dc" not in text and "$tuple" not in text
    hooked = next(t for t in data["tasks"] if t["webhook"])
    assert hooked["webhook"]["effect"] == {
        "delay_s": 0.5, "fail_attempts": 0, "duplicate": True, "drop": False
    }  # fmt: skip
    assert next(t for t in data["tasks"] if t["image"])["image"] == {
        "mode": "expire", "after_s": 12.5
    }  # fmt: skip


def test_a_version_1_file_saved_again_as_version_2_restores_the_same() -> None:
    first = _emulator()
    state.load_into(first, V1)
    second = _emulator()
    state.restore(second, json.loads(state.dump(first)))
    assert list(second.tasks) == list(first.tasks)
    assert list(second.journal) == list(first.journal)
    assert second.rng.getstate() == first.rng.getstate()
    assert state.dump(second) == state.dump(first)


_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
_DURATION = st.floats(0, 1e6) | st.just(float("inf"))


@st.composite
def _tasks(draw: st.DrawFn) -> list[Task]:
    out: list[Task] = []
    for i in range(draw(st.integers(0, 4))):
        created = draw(st.floats(0, 2e9))
        finished = draw(st.none() | st.floats(0, 2e9))
        forced = draw(st.none() | st.tuples(st.sampled_from(list(State)), st.floats(0, 2e9),
                                            st.integers(0, 100)))  # fmt: skip
        image = draw(st.none() | st.builds(ImageEffect, st.sampled_from(IMAGE_MODES), _DURATION))
        effect = draw(st.none() | st.builds(WebhookEffect, _DURATION, st.integers(0, 5),
                                            st.booleans(), st.booleans()))  # fmt: skip
        words = {s.value: draw(_TEXT) for s in State}
        webhook = draw(st.none() | st.builds(WebhookTarget, _TEXT, _TEXT, st.just(words),
                                             st.just(effect)))  # fmt: skip
        script = TaskScript(
            draw(_DURATION), draw(_DURATION), draw(st.sampled_from([State.SUCCEEDED, State.FAILED])),
            draw(st.none() | _TEXT), draw(st.booleans()), draw(st.none() | st.integers(1, 9)),
            draw(st.none() | st.integers(1, 9)),
        )  # fmt: skip
        params = draw(st.dictionaries(_TEXT, st.none() | st.booleans() | st.integers(-(2**63), 2**63)
                                      | _TEXT | st.lists(_TEXT, max_size=3), max_size=4))  # fmt: skip
        out.append(Task(
            f"task{i}", "aio_h", draw(st.sampled_from(["cogview-4", "flux-2"])), params,
            created, script, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 4096)),
            draw(st.integers(1, 4096)), draw(st.integers(1, 4)), 0, draw(_TEXT),
            draw(st.integers(0, 10**6)), finished, forced, image, webhook,
        ))  # fmt: skip
    return out


@settings(max_examples=60, deadline=None)
@given(_tasks(), st.integers(-(2**63), 2**63), st.floats(0, 2e9))
def test_version_2_round_trips_any_task(tasks: list[Task], seed: int, now: float) -> None:
    first = _emulator(seed=seed)
    first.clock.restore(now)
    first.tasks._tasks = {t.id: t for t in tasks}  # as they are: no sweep settles them
    payload = state.dump(first)
    assert not re.search(rb"\bemulator\.(?!test\b)", payload)
    second = _emulator(seed=1)
    data = json.loads(payload)
    saved = state.parse(data, second.catalogue, "virtual", source="<test>")
    assert saved.tasks == tasks and saved.seed == seed and saved.now == now


def test_video_speech_and_tool_tasks_survive_a_restore_and_serve_the_same_files() -> None:
    first = _emulator()
    client = Client(create_app(emulator=first), base_url="http://emulator.test")
    bodies = [
        ("/api/v1/videos/generations", {"model": "seedance-1-5-pro", "prompt": "a boat",
                                        "duration": 10, "generateAudio": True}),
        ("/api/v1/audio/speech", {"model": "elevenlabs-v3", "dialogue": [{"text": "Hi there."}]}),
        ("/api/v1/images/tools/face-swap", {"model": "face-swap", "image": "https://x.test/a",
                                            "face_image": "https://x.test/b",
                                            "output_format": "webp"}),
    ]  # fmt: skip
    ids = [client.post(path, json=body, headers=AUTH).json()["data"]["task_id"]
           for path, body in bodies]  # fmt: skip
    client.advance(600)
    urls = [
        next(v for k, v in client.poll(i).json()["data"]["output"].items() if k.endswith("_url"))
        for i in ids
    ]
    files = [client.get(url.replace("http://emulator.test", "")).content for url in urls]
    second = _emulator()
    state.restore(second, json.loads(state.dump(first)))
    again = Client(create_app(emulator=second), base_url="http://emulator.test")
    assert [again.poll(i).json()["data"]["credits_consumed"] for i in ids] == [
        84,
        1,
        4,
    ]  # seedance 10 s priced as 12 s, with audio
    assert [again.get(url.replace("http://emulator.test", "")).content for url in urls] == files


# -- chat calls in the journal --------------------------------------------------------------------

CHAT = "/api/v1/chat/completions"


def test_a_chat_calls_whole_answer_survives_a_restore(client: Client) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = {"model": "gemini", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    whole = client.post(CHAT, json=body, headers=AUTH).json()
    client.post(CHAT, json={**body, "stream": True, "tools": [tool]}, headers=AUTH)
    emulator: Emulator = client.app.state.emulator  # type: ignore[attr-defined]
    restored = _emulator()
    state.restore(restored, json.loads(state.dump(emulator)))
    first, second = restored.journal.entries()
    assert first["response"]["completion"] == whole
    assert first == emulator.journal.entries()[0] and second == emulator.journal.entries()[1]


def test_a_chat_answer_journaled_as_a_summary_comes_back_as_a_completion(client: Client) -> None:
    """Entries journaled before the whole completion was kept (a summary of it)."""
    body = {"model": "gemini", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    client.post(CHAT, json=body, headers=AUTH)
    data = json.loads(state.dump(client.app.state.emulator))  # type: ignore[attr-defined]
    entry = data["journal"]["entries"][0]
    calls = [{"id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'}]
    summaries = [
        {"reply": "Hello.", "finish_reason": "stop", "usage": {"prompt_tokens": 5,
         "completion_tokens": 2, "total_tokens": 7}, "credits_consumed": 1, "ttft_ms": None,
         "stream": False},
        {"reply": json.dumps(calls), "finish_reason": "tool_calls", "usage": None,
         "credits_consumed": 0, "ttft_ms": 12.5, "stream": True},
    ]  # fmt: skip
    data["journal"]["entries"] = [
        {**entry, "seq": n, "response": json.dumps(summary)}
        for n, summary in enumerate(summaries, start=1)
    ]
    data["journal"]["seq"] = 2
    restored = _emulator()
    state.restore(restored, data)
    text, called = (e["response"] for e in restored.journal.entries())
    assert text == {
        "completion": {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            "credits_consumed": 1,
        },
        "stream": False, "wrapped": False, "ttft_ms": None, "charged": 1, "fault": None,
        "cut": False, "sent": None,
    }  # fmt: skip
    assert called["completion"]["choices"][0]["message"] == {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q":"x"}'}}],
    }  # fmt: skip
    assert (called["stream"], called["ttft_ms"], called["charged"]) == (True, 12.5, 0)
