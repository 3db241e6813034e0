"""The scenario engine: which rule applies to a request, deterministically."""

from __future__ import annotations

from emulator.engine import Request, ScenarioRuntime
from emulator.scenarios import parse
from emulator.tasks import State, TaskScript


def runtime(
    *rules: dict, seed: int = 1, clock: list[float] | None = None, **top
) -> ScenarioRuntime:
    top = {k.removeprefix("scenario_"): v for k, v in top.items()}
    scenario = parse({"name": "t", "rules": list(rules), **top})
    now = clock if clock is not None else [0.0]
    return ScenarioRuntime(scenario, seed, clock=lambda: now[0])


def create(key: str = "aio_a", headers: dict | None = None, **body) -> Request:
    body.setdefault("model", "cogview-4")
    body.setdefault("prompt", "a cat")
    return Request("create", key, headers or {}, body)


def test_first_matching_rule_wins_and_no_match_means_no_rule() -> None:
    rt = runtime(
        {"name": "flux", "match": {"model": "flux-2"}, "error": {"status": 500}},
        {"name": "all-creates", "match": {"endpoint": "create"}, "error": {"status": 503}},
    )
    assert rt.decide(create(model="flux-2")).error.status == 500
    assert rt.decide(create()).error.status == 503
    assert rt.decide(create()).rule == "rules[1] (all-creates)"
    assert rt.decide(Request("task", "aio_a", {})).rule is None


def test_first_two_creates_get_429_then_normal() -> None:
    rt = runtime({"match": {"endpoint": "create", "nth": [1, 2]}, "error": {"status": 429}})
    statuses = [getattr(rt.decide(create()).error, "status", 200) for _ in range(4)]
    assert statuses == [429, 429, 200, 200]


def test_every_kth_call() -> None:
    rt = runtime({"match": {"every": 3}, "fault": "reset"})
    assert [rt.decide(create()).fault for _ in range(6)] == [None, None, "reset"] * 2


def test_nth_counts_only_calls_that_fit_the_other_conditions() -> None:
    rt = runtime({"match": {"model": "imagen4", "nth": 2}, "error": {"status": 500}})
    assert rt.decide(create()).error is None
    assert rt.decide(create(model="imagen4")).error is None
    assert rt.decide(create()).error is None
    assert rt.decide(create(model="imagen4")).error.status == 500


def test_probability_is_reproducible_for_a_seed() -> None:
    rule = {"match": {"probability": 0.3}, "error": {"status": 500}}

    def outcomes(seed: int) -> list[bool]:
        rt = runtime(rule, seed=seed)
        return [rt.decide(create()).error is not None for _ in range(200)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert first != outcomes(8)
    assert 40 <= sum(first) <= 80
    rt = runtime(rule, seed=7)
    rt.decide(create())
    rt.reset()
    assert [rt.decide(create()).error is not None for _ in range(200)] == first


def test_scenario_seed_overrides_the_server_seed() -> None:
    rule = {"match": {"probability": 0.5}, "error": {"status": 500}}
    a = runtime(rule, seed=1, scenario_seed=99)
    b = runtime(rule, seed=2, scenario_seed=99)
    assert [a.decide(create()).error for _ in range(50)] == [
        b.decide(create()).error for _ in range(50)
    ]


def test_match_on_key_header_prompt_size_quality() -> None:
    rt = runtime(
        {"name": "k", "match": {"key": ["aio_bad"]}, "error": {"status": 401}},
        {
            "name": "h",
            "match": {"header": {"name": "X-Test", "value": "yes"}},
            "error": {"status": 418},
        },
        {"name": "p", "match": {"prompt_contains": "GORE"}, "error": {"status": 400}},
        {"name": "r", "match": {"prompt_regex": "^draw \\d+"}, "error": {"status": 409}},
        {
            "name": "s",
            "match": {"size": "720*1440", "quality": "standard"},
            "error": {"status": 422},
        },
    )
    assert rt.decide(create(key="aio_bad")).rule == "rules[0] (k)"
    assert rt.decide(create(headers={"x-test": "yes"})).rule == "rules[1] (h)"
    assert rt.decide(create(headers={"x-test": "no"})).rule is None
    assert rt.decide(create(prompt="some gore here")).rule == "rules[2] (p)"
    assert rt.decide(create(prompt="Draw 3 cats")).rule == "rules[3] (r)"
    assert rt.decide(create(size="720*1440", quality="standard")).rule == "rules[4] (s)"
    assert rt.decide(create(size="720*1440", quality="hd")).rule is None


def test_family_ids_match_their_models() -> None:
    scenario = parse({"name": "t", "rules": [{"match": {"model": "imagen4"}, "fault": "hang"}]})
    rt = ScenarioRuntime(scenario, 1, resolve_model={"imagen-4": "imagen4"}.get)
    assert rt.decide(create(model="imagen-4")).fault == "hang"


def test_rate_limit_is_a_token_bucket_per_key_with_retry_after() -> None:
    clock = [100.0]
    rt = runtime(
        {"match": {"endpoint": "create"}, "rate_limit": {"capacity": 2, "per_second": 0.5}},
        {"match": {"endpoint": "create"}, "latency": 5},
        clock=clock,
    )
    first = [rt.decide(create()) for _ in range(3)]
    assert [d.error is None for d in first] == [True, True, False]
    assert first[0].latency_s == 0.005  # an allowed request falls through to later rules
    limited = first[2].error
    assert limited.status == 429 and limited.type == "rate_limit_exceeded"
    assert limited.headers == {"Retry-After": "2"}
    assert rt.decide(create(key="aio_other")).error is None  # buckets are per key
    clock[0] += 2.0
    assert rt.decide(create()).error is None
    assert rt.decide(create()).error is not None


def test_task_script_overrides_default_timing() -> None:
    rt = runtime({"match": {}, "task": {"running": 45, "outcome": "fail", "error": "nope"}})
    effect = rt.decide(create()).task
    script = rt.task_script(effect, TaskScript(queued_s=1.5, running_s=4))
    assert script == TaskScript(queued_s=1.5, running_s=45, outcome=State.FAILED, error="nope")
    assert rt.task_script(None, TaskScript(1, 2)) == TaskScript(1, 2)


def test_a_fixed_timing_is_one_script_a_drawn_one_is_drawn_per_task() -> None:
    fixed = runtime({"match": {}, "task": {"queued": 0, "running": 2}})
    effect = fixed.decide(create()).task
    first = fixed.task_script(effect, TaskScript(1, 4))
    assert first == TaskScript(queued_s=0, running_s=2)
    assert fixed.task_script(effect, TaskScript(7, 9)) is first  # the default plays no part
    drawn = runtime({"match": {}, "task": {"queued": 0, "running": {"uniform": [1, 9]}}})
    effect = drawn.decide(create()).task
    runs = {drawn.task_script(effect, TaskScript(1, 4)).running_s for _ in range(5)}
    assert len(runs) == 5
    half = runtime({"match": {}, "task": {"running": 3}})  # queued: the model's, per task
    effect = half.decide(create()).task
    assert half.task_script(effect, TaskScript(1, 4)).queued_s == 1
    assert half.task_script(effect, TaskScript(2, 4)).queued_s == 2


def test_status_words_override_only_what_they_name() -> None:
    rt = runtime(status_words={"succeeded": "COMPLETED", "failed": "FAILED"})
    words = rt.words
    assert words[State.SUCCEEDED] == "COMPLETED" and words[State.FAILED] == "FAILED"
    assert words[State.RUNNING] == "IN_PROGRESS"
