"""Fuzzing: schemathesis against a live emulator, and hypothesis properties of the core.

The schemathesis runs are bounded (fixed example counts, derandomized, so the same cases every
run) and every call has a timeout, so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

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
    """The emulated API: its routes and their CORS preflights (chat has a run of its own)."""
    document = build_openapi(CATALOGUE)
    return schemathesis.openapi.from_dict(document).include(tag_regex="^(images|tools|cors)$")


# -- schemathesis ---------------------------------------------------------------------------


def _run_operations(api: Any, live: LiveServer, examples: int) -> list[str]:
    """Every emulated operation, valid and invalid inputs; the failures found, not raised (no
    shrinking, so the run time stays bounded)."""
    failures: list[str] = []
    checks = [*CHECKS, negative_data_rejection]
    for result in api.get_all_operations():
        operation = result.ok()
        # the image tools share the image route's checks: fewer examples keep the run short
        count = examples // 5 if "tools" in (operation.tags or ()) else examples
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, live, count, checks, failures)
    return failures


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    live: LiveServer,
    examples: int,
    checks: list[Any],
    failures: list[str],
) -> None:
    @bounded(examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(
                base_url=live.url,
                headers={"Authorization": f"Bearer {FUZZ_KEY}"},
                timeout=TIMEOUT_S,
                checks=checks,
            )
        except Exception as exc:
            failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])

    try:
        run()
    except Unsatisfiable:  # nothing of the operation can be made invalid (a preflight's strings)
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_schemathesis_every_operation_no_5xx_no_schema_violation(
    api: Any, live: LiveServer
) -> None:
    started = time.monotonic()
    failures = _run_operations(api, live, examples=100)
    assert failures == [], "\n\n".join(failures[:5])
    assert time.monotonic() - started < 60


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
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
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
    """What the document allows is exactly what the validator accepts (no nulls, no integral
    floats: the validator treats null as absent and JSON Schema calls 2.0 an integer)."""
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
