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

from emulator import state
from emulator.app import create_app
from emulator.config import Config
from emulator.scenarios import ImageEffect, TaskEffect
from emulator.service import Emulator
from emulator.tasks import State

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
