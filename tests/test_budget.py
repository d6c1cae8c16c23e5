"""Budget: the per-round max_tokens, token estimates, cost and context use."""

from __future__ import annotations

import pytest

from core.continuation.budget import (
    MIN_ROUND_TOKENS,
    Calibration,
    context_margin,
    context_used,
    estimate_completion,
    next_prompt_tokens,
    round_budget,
    round_cost,
)
from core.types import Prices, Round, RunResult, RunSpec


def spec(**kw: object) -> RunSpec:
    return RunSpec(messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


def test_the_per_round_setting_limits_when_nothing_else_does() -> None:
    b = round_budget(spec(max_tokens=500), context_tokens=100, produced_tokens=0, window=None)
    assert (b.max_tokens, b.limited_by) == (500, "per_round")


def test_the_output_cap_limits_a_larger_setting() -> None:
    b = round_budget(spec(max_tokens=9000, output_cap=4096), context_tokens=0, produced_tokens=0, window=None)
    assert (b.max_tokens, b.limited_by) == (4096, "output_cap")


def test_the_window_minus_context_and_margin_limits() -> None:
    b = round_budget(spec(max_tokens=4000), context_tokens=6000, produced_tokens=0, window=8192)
    assert b.max_tokens == 8192 - 6000 - context_margin(8192)
    assert b.limited_by == "context"


def test_the_tokens_left_to_the_target_limit() -> None:
    b = round_budget(
        spec(max_tokens=4000, target_tokens=5000), context_tokens=0, produced_tokens=4900, window=None
    )
    assert (b.max_tokens, b.limited_by) == (100, "target")


def test_a_full_window_is_exhausted() -> None:
    b = round_budget(
        spec(max_tokens=1),
        context_tokens=8192 - context_margin(8192) - MIN_ROUND_TOKENS + 1,
        produced_tokens=0,
        window=8192,
    )
    assert b.exhausted


def test_a_tiny_per_round_setting_is_not_exhaustion() -> None:
    b = round_budget(spec(max_tokens=1), context_tokens=100, produced_tokens=0, window=8192)
    assert not b.exhausted and b.max_tokens == 1


def test_calibration_learns_the_servers_ratio() -> None:
    calib = Calibration()
    calib.observe(200, 1000, from_server=True)
    assert calib.ratio == pytest.approx(0.2)


def test_server_numbers_replace_chunk_counts() -> None:
    calib = Calibration()
    calib.observe(500, 1000, from_server=False)
    calib.observe(100, 1000, from_server=True)
    assert calib.ratio == pytest.approx(0.1)


def test_before_any_usage_the_estimate_is_conservative() -> None:
    assert Calibration().estimate(400) >= 100


def test_a_completion_estimate_is_at_least_the_chunk_count() -> None:
    calib = Calibration()
    calib.observe(100, 1000, from_server=True)
    assert estimate_completion(1000, 250, calib) == 250
    assert estimate_completion(1000, 10, calib) == 100


def test_without_any_server_usage_the_chunk_count_is_the_estimate() -> None:
    assert estimate_completion(1000, 170, Calibration()) == 170


def test_the_next_prompt_is_the_last_prompt_plus_what_it_generated() -> None:
    calib = Calibration()
    n = next_prompt_tokens(
        prev_prompt=1000,
        prev_completion=300,
        generated_chars=1500,
        delta_chars=1500,
        calib=calib,
    )
    assert n == 1300


def test_the_next_prompt_leaves_out_what_is_not_resent() -> None:
    calib = Calibration()
    n = next_prompt_tokens(
        prev_prompt=1000,
        prev_completion=300,
        generated_chars=1500,
        delta_chars=500,
        calib=calib,
    )
    assert n == 1100


def test_round_cost_uses_input_output_and_cached_prices() -> None:
    prices = Prices(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.5)
    assert round_cost(prices, prompt=1_000_000, completion=500_000, cached=200_000) == pytest.approx(
        0.8 + 0.1 + 1.0
    )


def test_no_prices_no_cost() -> None:
    assert round_cost(None, 10, 10) is None


def test_context_used_is_the_last_rounds_prompt_plus_completion() -> None:
    result = RunResult(
        spec=spec(),
        rounds=[
            Round(1, prompt_tokens=10, completion_tokens=90),
            Round(2, prompt_tokens=100, completion_tokens=50),
        ],
    )
    assert context_used(result) == 150


def test_a_shorter_next_request_lowers_the_estimate() -> None:
    calib = Calibration()
    calib.observe(250, 1000, from_server=True)
    n = next_prompt_tokens(
        prev_prompt=1000, prev_completion=0, generated_chars=0, delta_chars=-400, calib=calib
    )
    assert 900 <= n < 1000


def test_growth_beyond_the_generated_text_is_estimated() -> None:
    calib = Calibration()
    calib.observe(250, 1000, from_server=True)
    n = next_prompt_tokens(
        prev_prompt=1000, prev_completion=300, generated_chars=1500, delta_chars=1900, calib=calib
    )
    assert n >= 1300 + 100


def test_costs_carry_no_float_noise() -> None:
    prices = Prices(input_per_mtok=0.23, output_per_mtok=0.4)
    cost = round_cost(prices, 1_733, 287)
    assert cost == 0.00051339 and repr(cost) == "0.00051339"
    result = RunResult(spec=RunSpec(messages=[]), rounds=[Round(index=i, cost=0.1) for i in (1, 2, 3)])
    assert result.cost == 0.3  # 0.1 + 0.1 + 0.1 would be 0.30000000000000004
