"""Each fact computed once (issue 11): the spec factory, the estimator, the gauge, the cost, redaction."""

from __future__ import annotations

import ast
from pathlib import Path

from core.continuation import budget, validation
from core.services.snapshot import gauge_for
from core.services.specs import make_spec, with_model
from core.types import Prices, Round, RunSpec
from core.wire.client import ModelInfo
from core.wire.redaction import StreamRedactor, redact


def test_the_factory_takes_what_the_user_set_then_the_model_list_then_the_preset() -> None:
    info = ModelInfo(id="m", context_length=32768, max_output=2048, prices=Prices(1.0, 2.0))
    preset = make_spec("demo", "hi")
    listed = make_spec("demo", "hi", model="m", info=info)
    explicit = make_spec("demo", "hi", model="m", info=info, context_window=4096)
    assert (preset.context_window, preset.output_cap) == (8192, 4096)
    assert (listed.context_window, listed.output_cap, listed.prices) == (32768, 2048, Prices(1.0, 2.0))
    assert explicit.context_window == 4096 and explicit.output_cap == 2048


def test_a_model_changed_later_gets_its_limits_by_the_same_rule() -> None:
    spec = make_spec("demo", "hi", context_window=1000)
    info = ModelInfo(id="big", context_length=65536, max_output=None, prices=None)
    assert with_model(spec, info).context_window == 65536
    assert with_model(spec, info, keep_window=True).context_window == 1000
    assert with_model(spec, None).context_window == 8192  # unknown model: the preset


def test_the_gauge_and_the_refusal_count_a_prompt_alike() -> None:
    spec = RunSpec(messages=[{"role": "user", "content": "word " * 9000}], context_window=8192)
    _, tokens = budget.first_prompt(spec)
    assert gauge_for(spec, []).prompt_tokens == tokens
    problems = validation.spec_problems(spec)
    assert problems and f"about {tokens:,} tokens" in str(problems[0])


def callers(name: str) -> list[str]:
    """The files of core/ and pages/ that call a function called ``name``."""
    root = Path(__file__).resolve().parents[1]
    found = set()
    for path in [*root.joinpath("core").rglob("*.py"), *root.joinpath("pages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            if getattr(func, "id", None) == name or getattr(func, "attr", None) == name:
                found.add(path.relative_to(root).as_posix())
    return sorted(found)


def test_a_run_is_validated_where_the_engine_starts_and_by_the_front_ends_that_refuse_first() -> None:
    """The engine checks every spec; the front ends that answer before a run exists (exit 2, the
    Studio's message, a 400) call the same check and hand the engine the proof: nobody else checks a
    run (tests/test_validation_once.py counts one check a run). A batch's rows are checked when it is
    created (one row error each)."""
    assert callers("validate_spec") == [
        "core/cli/run.py",
        "core/continuation/engine.py",
        "core/serve/body.py",
        "core/services/jobs.py",
    ]
    assert callers("spec_problems") == ["core/continuation/validation.py", "core/services/batch/specs.py"]


def test_the_live_gauge_prices_cached_input_like_the_rounds() -> None:
    prices = Prices(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.1)
    spec = RunSpec(messages=[{"role": "user", "content": "x"}], prices=prices)
    done = Round(1, text="a", prompt_tokens=1000, completion_tokens=100, cached_tokens=800)
    done.cost = budget.round_cost(prices, 1000, 100, 800)
    assert gauge_for(spec, [done]).cost == budget.round_cost(prices, 1000, 100, 800)
    assert budget.prompt_cost(prices, 1000) == budget.round_cost(prices, 1000, 0)


def test_an_interrupted_round_without_counts_is_estimated_by_the_one_estimator() -> None:
    spec = RunSpec(messages=[{"role": "user", "content": "x"}])
    cut = Round(1, text="some text " * 30)
    gauge = gauge_for(spec, [cut])
    assert gauge.generated_tokens == budget.estimate_text(cut.text) and gauge.estimated


def test_one_redaction_for_whole_texts_and_streams() -> None:
    key = "sk-0123456789"
    assert redact(f"a {key} b", key) == "a [redacted] b"
    stream = StreamRedactor([key])
    out = "".join(stream.feed(part) for part in ("a sk-01", "23456789 b")) + stream.flush()
    assert out == "a [redacted key] b" and stream.count == 1
