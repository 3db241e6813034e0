"""``aio-emulator verify`` against live emulators: the report, the budget guard, the round trip."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from emulator import verify
from emulator.app import create_app
from emulator.catalogue import Catalogue
from emulator.cli import main
from emulator.config import Config
from emulator.scenarios import load
from emulator.server import LiveServer

KEY = "aio_verify_key"
OTHER = """
name: other-words
description: A server whose status words and unknown-model error type differ.
status_words: {succeeded: COMPLETED, failed: FAILED}
defaults: {task: {queued: 0, running: 0}}
rules:
  - name: another error type for unknown models
    match: {endpoint: create, model: no-such-model-aio-verify}
    error: {status: 400, type: bad_request, message: "Unknown model"}
"""


def _live(config: Config) -> LiveServer:
    return LiveServer(create_app(config)).start()


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The 'real service' stand-in: other status words, another error type, instant tasks."""
    path = tmp_path_factory.mktemp("other") / "other.yaml"
    path.write_text(OTHER)
    server = _live(Config(seed=2, scenario=str(path)))
    yield server
    server.stop()


@pytest.fixture
def first() -> Iterator[LiveServer]:
    server = _live(Config(seed=1, scenario="instant"))
    yield server
    server.stop()


def _differences(report: verify.Report) -> dict[str, tuple]:
    return {c.name: (c.expected, c.observed) for c in report.differences}


def test_an_emulator_agrees_with_itself(first: LiveServer) -> None:
    report = verify.run_verify(first.url, KEY, interval=0.05, timeout=10, chat=True)
    assert report.differences == [], report.render()
    names = [c.name for c in report.checks]
    for expected in (
        "error: invalid API key",
        "error: unknown model",
        "error: invalid field (size)",
        "error: malformed JSON",
        "error: unknown task",
        "create: envelope",
        "status words while in progress",
        "status word at the end (succeeded)",
        "task body: fields and types",
        "image download",
        "time to the end (s)",
        "error: chat: empty messages",
        "chat: HTTP status",
        "chat: completion fields and types",
        "chat: credits_consumed for its usage",
        "chat: streamed HTTP status",
        "chat: stream of chunks",
    ):
        assert expected in names
    chats = [e for e in first.app.state.emulator.journal.newest() if e.kind == "chat"]
    assert [e.status for e in chats] == [200, 200, 400]  # newest first: streamed, whole, empty
    assert [c.verdict for c in report.checks if c.name.endswith("(failed)")] == ["unverified"]


def test_verify_reports_exactly_the_differences(second: LiveServer) -> None:
    report = verify.run_verify(second.url, KEY, interval=0.05, timeout=10)
    assert _differences(report) == {
        "status word at the end (succeeded)": ("completed", "COMPLETED"),
        "error: unknown model": ("400 invalid_request_error", "400 bad_request"),
    }
    text = report.render()
    assert "DIFFER" in text and "2 difference(s)" in text


def test_round_trip_the_written_scenario_makes_them_agree(
    second: LiveServer, tmp_path: Path
) -> None:
    seen = verify.run_verify(second.url, KEY, interval=0.05, timeout=10)
    data, text = verify.scenario_from_report(seen)
    assert data["status_words"] == {"succeeded": "COMPLETED"}
    assert "error: unknown model" in text and "bad_request" in text  # reported, as a comment
    written = tmp_path / "observed.yaml"
    written.write_text(text)
    assert load(str(written)).status_words == {"succeeded": "COMPLETED"}

    # the first emulator, serving exactly the written file (virtual clock, moved while polling)
    first = _live(Config(seed=1, clock="virtual", scenario=str(written)))
    try:
        advance = lambda _s: _post(first.url + "/_emulator/clock/advance", {"seconds": 30})  # noqa: E731
        aligned = verify.run_verify(
            first.url, KEY, scenario=str(written), interval=0.01, timeout=10, sleep=advance
        )
    finally:
        first.stop()
    assert aligned.differences == [], aligned.render()
    for key in ("final_word", "final_state"):
        assert aligned.observed[key] == seen.observed[key]
    # and the written expectations match the other server on everything a scenario can say
    again = verify.run_verify(second.url, KEY, scenario=str(written), interval=0.05, timeout=10)
    assert list(_differences(again)) == ["error: unknown model"]


def _post(url: str, body: dict) -> None:
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_cli_prints_plan_and_report_writes_scenario_and_exits_1(
    second: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.yaml"
    report_json = tmp_path / "r.json"
    argv = ["verify", "--base-url", second.url, "--api-key", KEY, "--yes", "--interval", "0.05",
            "--chat", "--max-credits", "18", "--write-scenario", str(out),
            "--json", str(report_json)]  # fmt: skip
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "Plan against" in printed and "Cost: 6 credits expected, at most 18" in printed
    assert "chat: one short answer, streamed: 1 credits, up to 5" in printed
    assert "COMPLETED" in printed and "DIFFER" in printed
    assert yaml.safe_load(out.read_text())["status_words"] == {"succeeded": "COMPLETED"}
    assert len(json.loads(report_json.read_text())["checks"]) > 10


def test_cli_exits_0_when_everything_agrees(first: LiveServer) -> None:
    argv = ["verify", "--base-url", first.url, "--api-key", KEY, "--yes", "--interval", "0.05"]
    assert main(argv) == 0


def test_budget_guard_refuses_before_sending_anything(
    first: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--base-url", first.url, "--api-key", KEY, "--yes", "--max-credits", "7"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "may cost 8 credits, more than --max-credits 7" in captured.err
    assert len(first.app.state.emulator.journal) == 0


def test_without_yes_a_closed_stdin_means_no(
    first: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "--base-url", first.url, "--api-key", KEY]
    assert main(argv) == 2  # pytest's stdin cannot be read: same as CI's closed stdin
    assert "pass --yes" in capsys.readouterr().out
    assert len(first.app.state.emulator.journal) == 0


def test_a_yes_at_the_prompt_runs_it(first: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    argv = ["verify", "--base-url", first.url, "--api-key", KEY, "--interval", "0.05"]
    assert main(argv) == 0


def test_plan_costs_come_from_the_catalogue() -> None:
    catalogue = Catalogue.load()
    model = verify.probe_model(catalogue, "imagen-4")
    assert sum(s.credits for s in verify.plan(model, chat=False)) == 8
    edit = verify.probe_model(catalogue, "seedream/4.5-edit")  # image_urls: the probe's URL
    assert verify.probe_body(edit)["image_urls"] == [verify.PROBE_URL]
    kling = verify.probe_model(catalogue, "kling-3")
    assert sum(s.credits for s in verify.plan(kling, chat=False)) == 300
    chat = verify.plan(model, chat=True)[
        -3:
    ]  # two answers of 1 credit each, at most the 5 reserved
    assert [(s.credits, s.worst_credits) for s in chat] == [(0, 0), (1, 5), (1, 5)]


def test_an_unreachable_server_is_a_difference_not_a_crash() -> None:
    report = verify.run_verify("http://127.0.0.1:9", KEY, interval=0.01, timeout=1)
    assert report.differences
    assert report.checks[0].observed.startswith("no answer")


def test_a_body_shape_change_is_reported_and_commented_in_the_scenario(
    first: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulator.service import Emulator

    original = Emulator.task_body

    def renamed(self, *args, **kwargs):
        data = original(self, *args, **kwargs)
        data["percent"] = data.pop("progress")
        return data

    monkeypatch.setattr(Emulator, "task_body", renamed)
    report = verify.run_verify(first.url, KEY, interval=0.05, timeout=10)
    check = next(c for c in report.differences if c.name == "task body: fields and types")
    assert check.observed["progress"] == "missing"
    assert check.observed["percent"] == "unexpected integer"
    _, text = verify.scenario_from_report(report)
    assert "# Differences a scenario cannot express yet" in text and "percent" in text


@pytest.mark.parametrize(
    ("model", "download"),
    [("kling-3", "video download"), ("elevenlabs-v3", "audio download"),
     ("bg-remover", "image download")],
)  # fmt: skip
def test_verify_probes_every_family(first: LiveServer, model: str, download: str) -> None:
    report = verify.run_verify(first.url, KEY, model=model, interval=0.05, timeout=10)
    assert report.differences == [], report.render()
    assert download in [c.name for c in report.checks]


def test_verify_refuses_a_model_it_cannot_fill_in() -> None:
    with pytest.raises(verify.VerifyError, match="task_id"):
        verify.probe_model(Catalogue.load(), "grok-imagine/upscale")


WRAPPED = """
name: wrapped-chat
description: A server whose chat answers come in the {code, message, data} form.
chat: {body: wrapped}
"""


def test_a_wrapped_chat_answer_differs_on_its_shape(first: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.yaml"
    path.write_text(WRAPPED)
    other = _live(Config(seed=1, scenario=str(path)))
    try:
        report = verify.run_verify(other.url, KEY, interval=0.05, timeout=10, chat=True)
        # expecting what the emulator does with that scenario: they agree again
        aligned = verify.run_verify(
            other.url, KEY, scenario=str(path), interval=0.05, timeout=10, chat=True
        )
    finally:
        other.stop()
    (check,) = report.differences
    assert check.name == "chat: completion fields and types"
    assert check.expected["object"] == "chat.completion" and "object" not in check.observed
    assert check.observed["data"] == "object" and check.observed["code"] == "integer"
    assert aligned.differences == [], aligned.render()


def test_a_stream_without_done_differs(first: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.chat import handler

    monkeypatch.setattr(handler, "DONE", b"data: [END]\n\n")
    report = verify.run_verify(first.url, KEY, interval=0.05, timeout=10, chat=True)
    (check,) = report.differences
    assert check.name == "chat: stream of chunks"
    assert check.observed["ends with [DONE]"] is False and check.observed["chunks parse"] is False


def test_the_chat_probes_are_opt_in(first: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """A run against the paid service spends no chat credits unless asked (--chat)."""
    argv = ["verify", "--base-url", first.url, "--api-key", KEY, "--yes", "--interval", "0.05",
            "--max-credits", "8"]  # fmt: skip
    assert main(argv) == 0
    assert "chat" not in capsys.readouterr().out
    assert not [e for e in first.app.state.emulator.journal.newest() if e.kind == "chat"]
