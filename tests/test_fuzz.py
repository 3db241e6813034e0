"""Fuzzing: schemathesis against a live emulator, and hypothesis properties of the core.

The schemathesis runs are bounded (fixed example counts, derandomized, so the same cases every
run) and every call has a timeout, so a hang fails instead of stalling CI. Every operation of
the description gets :data:`EXAMPLES` valid and as many invalid inputs, with every check:
``AIO_FUZZ_EXAMPLES`` sets the count (``make fuzz`` runs 100).
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from emulator.app import create_app
from emulator.catalogue import Catalogue
from emulator.config import Config
from emulator.errors import InsufficientCredits, InvalidRequest, ServiceUnavailable
from emulator.openapi import build_openapi
from emulator.server import LiveServer
from emulator.service import Emulator
from emulator.tasks import State, Task, TaskScript, TaskStore, observe
from emulator.validation import validate_create

from .conformance import schema_validator

CATALOGUE = Catalogue.load()
FUZZ_KEY = "aio_fuzz"
TIMEOUT_S = 5.0
#: examples per operation and generation mode in ``make test``: about a minute of fuzzing
DEFAULT_EXAMPLES = 30


def fuzz_examples(environ: Mapping[str, str] = os.environ) -> int:
    """Examples per operation and generation mode: ``AIO_FUZZ_EXAMPLES`` when set (``make
    fuzz`` sets 100), else :data:`DEFAULT_EXAMPLES`."""
    raw = environ.get("AIO_FUZZ_EXAMPLES", "").strip()
    if not raw:
        return DEFAULT_EXAMPLES
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(
            f"AIO_FUZZ_EXAMPLES: expected a whole number of examples, at least 1, got {raw!r}"
        )
    return int(raw)


EXAMPLES = fuzz_examples()
#: most seconds one generated case may take on average (a coarse budget, not a benchmark:
#: machines are shared; a chat body takes the longest to make, about 0.08 s), so a run that
#: got many times slower fails instead of stalling CI
SECONDS_PER_CASE = 0.2
#: what every answer must be: no 5xx, documented statuses, media types and shapes
CONFORMANCE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: every check schemathesis has but the timing one (max_response_time: this machine is shared)
#: and object_level_authorization (one key per run: nothing to compare)
CHECKS = [
    *CONFORMANCE_CHECKS,
    response_headers_conformance,
    allow_header_conformance,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]
_BOUNDED = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def bounded(examples: int, **more: Any) -> settings:
    """Fixed example count, derandomized (a fixed seed), no shrinking, no example database."""
    return settings(_BOUNDED, max_examples=examples, **more)


#: "instant", and webhooks dropped: generated callback_url values must never leave the machine
OFFLINE_INSTANT = """name: instant-offline
defaults:
  task: {queued: 0, running: 0, webhook: {drop: true}}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live emulator whose tasks finish on the first poll, so task bodies and images appear."""
    scenario = tmp_path_factory.mktemp("fuzz") / "instant-offline.yaml"
    scenario.write_text(OFFLINE_INSTANT)
    app = create_app(Config(seed=7, clock="virtual", scenario=str(scenario)))
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def api() -> Any:
    """The image routes, the tools and their preflights: the stateful flows' operations."""
    document = build_openapi(CATALOGUE)
    return schemathesis.openapi.from_dict(document).include(tag_regex="^(images|tools|cors)$")


#: the tags whose operations the emulated-API run fuzzes (chat and control have runs of their
#: own: the chat package's tests, and a server of its own for the control API)
EMULATED = ("images", "videos", "speech", "music", "tools", "cors", "meta")
CONTROL_TOKEN = "fuzz-control-token"
#: checks that cannot apply to an operation, with why (every other check runs everywhere)
INAPPLICABLE: dict[str, dict[Any, str]] = {
    "PUT /_emulator/scenario": {
        positive_data_acceptance: "whether a path names a readable file, or an object passes "
        "the scenario's own checks (regexes, ranges, keys of each section), is no schema's to say"
    },
}


def past_a_sum(case: Any) -> bool:
    """Whether a create breaks a rule of its model that no JSON Schema can state, a sum:
    kling-3's multi-shot durations must add up to 3-15 s, a speech's texts to at most 5,000
    characters (the description says so in words)."""
    body = case.body
    model = CATALOGUE.resolve(str(body.get("model"))) if isinstance(body, dict) else None
    for rule in model.checks if model is not None else ():
        if rule["check"] == "shots" and body.get(rule["flag"]) is True:
            total = sum(shot["duration"] for shot in body.get(rule["list"]) or ())
            if not rule["total"][0] <= total <= rule["total"][1]:
                return True
        if rule["check"] == "max_characters" and model.characters(body) > rule["max"]:
            return True
    return False


def names_a_tool_not_sent(case: Any) -> bool:
    """Whether a chat request's ``tool_choice`` names a function its ``tools`` do not hold
    (a reference between two values, which no JSON Schema can state)."""
    choice = case.body.get("tool_choice")
    if not isinstance(choice, dict):
        return False
    sent = {tool["function"]["name"] for tool in case.body.get("tools") or ()}
    return choice["function"]["name"] not in sent


#: valid inputs of these operations leave out what their rule no schema states would refuse
BEYOND_THE_SCHEMA: dict[str, Callable[[Any], bool]] = {
    "POST /api/v1/videos/generations": past_a_sum,
    "POST /api/v1/audio/speech": past_a_sum,
    "POST /api/v1/chat/completions": names_a_tool_not_sent,
}


def operations(*tags: str) -> list[Any]:
    """The operations of the description under ``tags``, in its order."""
    schema = schemathesis.openapi.from_dict(build_openapi(CATALOGUE))
    chosen = schema.include(tag_regex="^(" + "|".join(tags) + ")$")
    return [result.ok() for result in chosen.get_all_operations()]


# -- schemathesis ---------------------------------------------------------------------------


def fuzz(
    operations: list[Any], base_url: str, headers: dict[str, str], examples: int,
    before: Callable[[], None] | None = None,
) -> list[str]:  # fmt: skip
    """Every operation, ``examples`` valid and as many invalid inputs, every check that applies
    (``before`` runs before each case); the failures found, not raised (no shrinking, so the
    run time stays bounded)."""
    failures: list[str] = []
    for operation in operations:
        skipped = INAPPLICABLE.get(operation.label, {})
        checks = [c for c in [*CHECKS, negative_data_rejection] if c not in skipped]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, base_url, headers, examples, checks, failures, before)
    return failures


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], examples: int,
    checks: list[Any], failures: list[str], before: Callable[[], None] | None,
) -> None:  # fmt: skip
    cases = operation.as_strategy(generation_mode=mode)
    refused = BEYOND_THE_SCHEMA.get(operation.label)
    if mode is GenerationMode.POSITIVE and refused is not None:
        cases = cases.filter(lambda case: not refused(case))

    @bounded(examples)
    @given(case=cases)
    def run(case: Any) -> None:
        if before is not None:
            before()
        try:
            case.call_and_validate(
                base_url=base_url, headers=headers, timeout=TIMEOUT_S, checks=checks
            )
        except (Exception, FailureGroup) as exc:  # (a group of failures is no Exception)
            failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])

    try:
        run()
    except Unsatisfiable:  # nothing of the operation can be made invalid (a preflight's strings)
        assert mode is GenerationMode.NEGATIVE, operation.label


def within_budget(started: float, operations: list[Any], examples: int) -> bool:
    """Whether a run of ``operations`` took no more than its budget of seconds per case."""
    return time.monotonic() - started < 10 + SECONDS_PER_CASE * 2 * examples * len(operations)


def test_the_example_count_comes_from_the_environment() -> None:
    assert fuzz_examples({}) == DEFAULT_EXAMPLES == fuzz_examples({"AIO_FUZZ_EXAMPLES": " "})
    assert fuzz_examples({"AIO_FUZZ_EXAMPLES": "100"}) == 100
    for bad in ("many", "0", "-5", "1.5"):
        with pytest.raises(pytest.UsageError, match=f"AIO_FUZZ_EXAMPLES: expected a whole "
                           f"number of examples, at least 1, got '{bad}'"):  # fmt: skip
            fuzz_examples({"AIO_FUZZ_EXAMPLES": bad})


def test_every_operation_of_the_description_is_fuzzed() -> None:
    tags = {tag for path in build_openapi(CATALOGUE)["paths"].values()
            for op in path.values() if isinstance(op, dict) for tag in op.get("tags", ())}  # fmt: skip
    assert tags == {*EMULATED, "chat", "control"}
    labels = {op.label for op in operations(*tags)}
    assert set(INAPPLICABLE) <= labels and set(BEYOND_THE_SCHEMA) <= labels


def test_schemathesis_every_operation_no_5xx_no_schema_violation(live: LiveServer) -> None:
    started = time.monotonic()
    emulated = operations(*EMULATED)
    headers = {"Authorization": f"Bearer {FUZZ_KEY}"}
    failures = fuzz(emulated, live.url, headers, EXAMPLES)
    assert failures == [], "\n\n".join(failures[:5])
    assert within_budget(started, emulated, EXAMPLES)


@pytest.fixture(scope="module")
def control_live() -> Iterator[LiveServer]:
    """An emulator of its own for the control API (a case may reset it or switch its
    scenario), with a control token, as a team runs it."""
    app = create_app(Config(seed=7, clock="virtual", control_token=CONTROL_TOKEN))
    with LiveServer(app) as server:
        yield server


def test_schemathesis_the_control_api_holds_up_to_fuzzing(control_live: LiveServer) -> None:
    """Each case starts from a reset emulator (through the API, with the token, as any
    client): a case that switched the scenario or advanced the clock changes no other."""
    started = time.monotonic()
    control = operations("control")
    headers = {"X-Emulator-Token": CONTROL_TOKEN}
    with httpx.Client(base_url=control_live.url, headers=headers, timeout=TIMEOUT_S) as client:

        def reset() -> None:
            client.post("/_emulator/reset").raise_for_status()

        failures = fuzz(control, control_live.url, headers, EXAMPLES, before=reset)
    assert failures == [], "\n\n".join(failures[:5])
    assert within_budget(started, control, EXAMPLES)


def _state_machine(api: Any, live: LiveServer) -> Any:
    """create -> poll -> download, following the document's links."""

    class Flow(api.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {FUZZ_KEY}"}
            return {"base_url": live.url, "headers": headers, "timeout": TIMEOUT_S}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    return Flow


def test_schemathesis_stateful_flows_conform(api: Any, live: LiveServer) -> None:
    emulator: Emulator = live.app.state.emulator
    emulator.journal.clear()
    started = time.monotonic()
    _state_machine(api, live).run(
        settings=bounded(20, stateful_step_count=6, phases=[Phase.generate])
    )
    assert time.monotonic() - started < 30
    ok = [e["path"] for e in emulator.journal if e["status"] == 200]
    assert any(p.startswith("/api/v1/tasks/") for p in ok)  # the flows reached task bodies...
    assert any(p.endswith(".png") for p in ok)  # ...and images


def test_schemathesis_catches_a_planted_shape_change(
    api: Any, live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Emulator.task_body

    def planted(self: Emulator, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(self, *args, **kwargs)
        data["credits"] = data.pop("credits_consumed")  # a rename
        return data

    monkeypatch.setattr(Emulator, "task_body", planted)
    with pytest.raises(BaseExceptionGroup) as failure:  # schemathesis: a group of failures
        _state_machine(api, live).run(
            settings=bounded(10, stateful_step_count=4, phases=[Phase.generate])
        )
    text = "".join(traceback.format_exception(failure.value))
    assert "Response violates schema" in text
    assert re.search(r"""["']credits_consumed["'] is a required property""", text)


# -- hypothesis: the validator --------------------------------------------------------------

CREATE_SCHEMA = schema_validator("components/schemas/CreateRequest")
IMAGES = CATALOGUE.routes["images"]  # the image route's validator against its schema
MODEL_NAMES = CATALOGUE.names(IMAGES)
FIELD_NAMES = sorted({name for m in CATALOGUE.route_models(IMAGES) for name in m.fields})
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        [
            *sorted(
                {
                    v
                    for m in CATALOGUE.route_models(IMAGES)
                    for f in m.fields.values()
                    for v in f.values
                }
            ),
            *("https://example.com/a.png", "ftp://x", "a lighthouse at dusk"),
        ]
    ),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))


@st.composite
def create_bodies(draw: Callable[..., Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        body["model"] = draw(st.one_of(st.sampled_from(MODEL_NAMES), _scalars))
    body["prompt"] = draw(st.one_of(st.text(min_size=0, max_size=6), _scalars))
    for name in draw(st.lists(st.sampled_from([*FIELD_NAMES, "extra"]), max_size=4)):
        body[name] = draw(_values)
    return body


@bounded(400)
@given(body=create_bodies())
def test_validator_agrees_with_the_published_schema(body: dict[str, Any]) -> None:
    """What the document allows is exactly what the validator accepts, nulls included (an
    optional field sent as null counts as not sent; a null URL is refused)."""
    try:
        request = validate_create(body, CATALOGUE)
    except InvalidRequest as exc:
        assert not CREATE_SCHEMA.is_valid(body), f"schema allows, validator says: {exc}"
        return
    assert CREATE_SCHEMA.is_valid(body), "validator accepts what the schema rejects"
    assert request.credits > 0 and request.images >= 1
    assert request.width > 0 and request.height > 0


@bounded(60)
@given(data=st.data())
def test_bodies_generated_from_the_schema_are_accepted(data: st.DataObject) -> None:
    operation = _create_operation()
    case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    request = validate_create(case.body, CATALOGUE)
    model = request.model
    assert request.credits == model.pricing.rate(request.params) * request.images
    assert (request.width, request.height) in model.allowed_pixel_sizes()


def test_an_integral_float_is_an_integer_for_both() -> None:
    body = {"model": "kling-image-o1", "prompt": "a fox", "num_images": 4.0}
    assert CREATE_SCHEMA.is_valid(body)
    request = validate_create(body, CATALOGUE)
    assert request.params["num_images"] == 4 and isinstance(request.params["num_images"], int)
    assert request.images == 4
    with pytest.raises(InvalidRequest, match="num_images: expected an integer, got number"):
        validate_create({**body, "num_images": 4.5}, CATALOGUE)


def test_a_null_optional_field_is_not_sent_for_both() -> None:
    body = {"model": "cogview-4", "prompt": "a fox", "quality": None, "size": None}
    assert CREATE_SCHEMA.is_valid(body)
    assert validate_create(body, CATALOGUE).params["quality"] == "hd"  # the default
    for refused in ({**body, "prompt": None}, {"model": "flux-2", "prompt": "a fox",
                                               "input_urls": None}):  # fmt: skip
        assert not CREATE_SCHEMA.is_valid(refused)  # required, or a URL list
        with pytest.raises(InvalidRequest):
            validate_create(refused, CATALOGUE)


_OPERATION: list[Any] = []


def _create_operation() -> Any:
    if not _OPERATION:
        api = schemathesis.openapi.from_dict(build_openapi(CATALOGUE))
        _OPERATION.append(api["/api/v1/images/generations"]["POST"])
    return _OPERATION[0]


# -- hypothesis: the task state machine -----------------------------------------------------

scripts = st.builds(
    TaskScript,
    queued_s=st.floats(0, 20),
    running_s=st.floats(0, 20),
    outcome=st.sampled_from([State.SUCCEEDED, State.FAILED]),
    error=st.sampled_from([None, "boom"]),
    forever=st.booleans(),
    fail_at_poll=st.one_of(st.none(), st.integers(1, 6)),
    progress_steps=st.one_of(st.none(), st.integers(1, 10)),
)


def _task(script: TaskScript, created: float = 100.0) -> Task:
    return Task(
        id="n48x_cv4", key="aio_k", model="cogview-4", params={}, created_at=created,
        script=script, seed=1, width=16, height=16, images=1, credits=4,
    )  # fmt: skip


@bounded(300)
@given(
    script=scripts,
    steps=st.lists(st.tuples(st.floats(0, 8), st.booleans()), min_size=1, max_size=25),
)
def test_task_progress_is_monotonic_and_it_ends_exactly_once(
    script: TaskScript, steps: list[tuple[float, bool]]
) -> None:
    finished: list[State] = []
    store = TaskStore(on_finish=lambda task, state: finished.append(state))
    task = _task(script)
    now = task.created_at
    store.add(task, now)
    last_progress, terminal = -1, None
    for delta, poll in steps:
        now += delta
        view = store.poll(task, now) if poll else observe(task, now)
        store.settle(now)
        assert 0 <= view.progress <= 100
        assert view.progress >= last_progress, "progress went backwards"
        last_progress = view.progress
        if terminal is not None:
            assert view.state is terminal, "a terminal state changed"
        elif view.state.terminal:
            terminal = view.state
        assert (view.state is State.SUCCEEDED) == (view.progress == 100)
        assert (view.error is not None) <= (view.state is State.FAILED)
    assert len(finished) <= 1, "settled twice"
    if terminal is not None:
        assert finished == [terminal]
    if script.forever and script.fail_at_poll is None:
        assert terminal is None


# -- hypothesis: credits --------------------------------------------------------------------

CHEAP = ["cogview-4", "imagen4-fast", "flux-2", "ideogram-v3-turbo"]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("create"),
            st.sampled_from(CHEAP),
            st.sampled_from([State.SUCCEEDED, State.FAILED]),
            st.floats(0, 10),
        ),
        st.tuples(st.just("advance"), st.floats(0, 12)),
        st.tuples(st.just("poll"), st.integers(0, 30)),
    ),
    max_size=30,
)


@bounded(150)
@given(start=st.integers(0, 60), max_tasks=st.integers(1, 8), steps=ops)
def test_credits_are_conserved_and_refunds_exact(
    start: int, max_tasks: int, steps: list[tuple[Any, ...]]
) -> None:
    emulator = Emulator(
        Config(seed=1, clock="virtual", keys={"aio_k": start}, max_tasks=max_tasks, task_ttl_s=5)
    )
    ledger, key = emulator.ledger, "aio_k"
    created: dict[str, Task] = {}

    def total() -> int:
        a = ledger.account(key)
        assert a.balance >= 0 and a.reserved >= 0 and a.spent >= 0
        return a.balance + a.reserved + a.spent

    for step in steps:
        if step[0] == "create":
            _, model, outcome, seconds = step
            request = validate_create({"model": model, "prompt": "abc"}, CATALOGUE)
            before = ledger.account(key).balance
            script = TaskScript(queued_s=0, running_s=seconds, outcome=outcome)
            try:
                task = emulator.create_task(key, request, script=script)
            except InsufficientCredits:
                assert ledger.account(key).balance == before < request.credits
                continue
            except ServiceUnavailable:  # every task held is live: none is forgotten, none made
                assert ledger.account(key).balance == before
                assert all(t.finished_at is None for t in emulator.tasks)
                continue
            created[task.id] = task
        elif step[0] == "advance":
            emulator.clock.advance(step[1])  # type: ignore[attr-defined]
            emulator.tasks.settle(emulator.clock.now())
        elif created:
            task = list(created.values())[step[1] % len(created)]
            if task.id in emulator.tasks:
                emulator.tasks.poll(task, emulator.clock.now())
        assert total() == start
    emulator.clock.advance(1000)  # type: ignore[attr-defined]
    emulator.tasks.settle(emulator.clock.now())
    account = ledger.account(key)
    assert total() == start and account.reserved == 0
    # only tasks that succeeded are billed, each exactly once
    billed = sum(
        t.credits
        for t in created.values()
        if t.finished_at is not None and observe(t, t.finished_at).state is State.SUCCEEDED
    )
    assert account.spent == billed
    assert account.balance == start - billed
