"""Properties of the budget arithmetic (core.continuation.budget) and of the context gauge (core.services.snapshot.Gauge).

max_tokens is the smallest limit, never negative, never more than the window
has room for or the output cap allows, and moves the right way when the
context, the output so far or the window grow; estimates never undercount
what they are calibrated on; the gauge stays within [0, 1].
"""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.continuation import budget
from core.continuation.budget import Calibration, context_margin, next_prompt_tokens, round_budget, round_cost
from core.services.snapshot import AMBER_AT, RED_AT, Gauge
from core.types import Prices, RunSpec

PROPS = settings(max_examples=200, deadline=None)

tokens = st.integers(0, 2_000_000)
windows = st.one_of(st.none(), st.integers(1, 2_000_000))


@st.composite
def specs(draw: st.DrawFn) -> RunSpec:
    return RunSpec(
        messages=[{"role": "user", "content": "x"}],
        max_tokens=draw(st.integers(1, 200_000)),
        output_cap=draw(st.one_of(st.none(), st.integers(1, 200_000))),
        target_tokens=draw(st.one_of(st.none(), st.integers(1, 2_000_000))),
    )


def limits(spec: RunSpec, context: int, produced: int, window: int | None) -> dict[str, int]:
    """Every limit that applies, straight from DESIGN §5."""
    out = {"per_round": spec.max_tokens}
    if spec.output_cap:
        out["output_cap"] = spec.output_cap
    if window:
        out["context"] = window - context - context_margin(window)
    if spec.target_tokens:
        out["target"] = spec.target_tokens - produced
    return out


# ---------------------------------------------------------------- the round budget


@PROPS
@given(specs(), tokens, tokens, windows)
@example(RunSpec(messages=[], max_tokens=100), 1000 - 16 - 15 - 100, 0, 1000)  # exactly room for 100
@example(RunSpec(messages=[], max_tokens=100), 1000 - 31 - 16, 0, 1000)  # room for 16: not exhausted
@example(RunSpec(messages=[], max_tokens=100), 1000 - 31 - 15, 0, 1000)  # room for 15: exhausted
@example(RunSpec(messages=[], max_tokens=100, target_tokens=50), 0, 50, None)  # the target reached
def test_max_tokens_is_the_smallest_limit_and_never_negative(
    spec: RunSpec, context: int, produced: int, window: int | None
) -> None:
    got = round_budget(spec, context_tokens=context, produced_tokens=produced, window=window)
    applying = limits(spec, context, produced, window)
    assert got.max_tokens == max(0, min(applying.values()))
    assert applying[got.limited_by] == min(applying.values())
    assert all(got.max_tokens <= max(0, value) for value in applying.values())
    assert got.context_room == applying.get("context")
    assert got.exhausted == (window is not None and applying["context"] < budget.MIN_ROUND_TOKENS)
    if window and not got.exhausted:  # the request fits the window, with the margin to spare
        assert context + got.max_tokens + context_margin(window) <= window


@PROPS
@given(specs(), tokens, tokens, st.integers(1, 2_000_000), st.integers(1, 5000))
def test_max_tokens_shrinks_as_the_context_and_output_grow_and_grows_with_the_window(
    spec: RunSpec, context: int, produced: int, window: int, more: int
) -> None:
    def max_tokens(context: int = context, produced: int = produced, window: int = window) -> int:
        return round_budget(spec, context_tokens=context, produced_tokens=produced, window=window).max_tokens

    base = max_tokens()
    assert max_tokens(context=context + more) <= base
    assert max_tokens(produced=produced + more) <= base
    assert max_tokens(window=window + more) >= base


def test_the_margin_is_sixteen_tokens_plus_one_in_sixty_four() -> None:
    assert [context_margin(w) for w in (1, 63, 64, 8192, 131_072)] == [16, 16, 17, 144, 2064]


@PROPS
@given(st.integers(1, 10**9), st.integers(1, 10**6))
def test_the_margin_is_at_least_sixteen_tokens_grows_with_the_window_and_leaves_room(
    window: int, more: int
) -> None:
    margin = context_margin(window)
    assert margin >= 16 and context_margin(window + more) >= margin
    if window > 16:
        assert margin < window


# ---------------------------------------------------------------- estimates

chars_seen = st.one_of(
    st.integers(-5, 120), st.integers(-5, 20000)
)  # often around the 200-character trust line
observations = st.lists(st.tuples(st.integers(-5, 5000), chars_seen, st.booleans()), max_size=12)


def calibrated(seen: list[tuple[int, int, bool]]) -> Calibration:
    calib = Calibration()
    for n_tokens, chars, from_server in seen:
        calib.observe(n_tokens, chars, from_server=from_server)
    return calib


@PROPS
@given(observations, st.integers(0, 10**7), st.integers(1, 10**6))
@example([(30, 150, True)], 1000, 1)  # a low ratio from too little text is not trusted yet
@example([(30, 200, True)], 1000, 1)  # ... from 200 characters on it is
def test_a_calibrated_estimate_never_undercounts_and_grows_with_the_text(
    seen: list[tuple[int, int, bool]], chars: int, more: int
) -> None:
    calib = calibrated(seen)
    assert calib.ratio > 0
    if calib.chars < 200:
        assert calib.ratio >= budget.DEFAULT_TOKENS_PER_CHAR  # little text seen: stay conservative
    else:
        assert calib.ratio == calib.tokens / calib.chars
    assert calib.estimate(0) == 0
    assert calib.estimate(chars) >= chars * calib.ratio
    assert calib.estimate(chars + more) >= calib.estimate(chars)


@PROPS
@given(observations)
def test_server_counts_replace_chunk_counts_and_are_never_replaced_back(
    seen: list[tuple[int, int, bool]],
) -> None:
    calib = calibrated(seen)
    valid = [(t, c, s) for t, c, s in seen if t > 0 and c > 0]
    if any(s for _, _, s in valid):
        first = next(i for i, (_, _, s) in enumerate(valid) if s)
        server = [(t, c) for t, c, s in valid[first:] if s]
        assert calib.from_server
        assert (calib.tokens, calib.chars) == (sum(t for t, _ in server), sum(c for _, c in server))
    else:
        assert not calib.from_server
        assert (calib.tokens, calib.chars) == (sum(t for t, _, _ in valid), sum(c for _, c, _ in valid))


@PROPS
@given(observations, st.integers(0, 10**6), st.integers(0, 10**5))
def test_a_completion_estimate_is_at_least_the_chunk_count(
    seen: list[tuple[int, int, bool]], chars: int, chunks: int
) -> None:
    calib = calibrated(seen)
    got = budget.estimate_completion(chars, chunks, calib)
    assert got >= chunks
    if not calib.from_server and chunks:
        assert got == chunks  # one token per chunk until the server says otherwise


@PROPS
@given(observations, st.integers(0, 10**6), st.integers(0, 50), st.integers(1, 1000))
def test_a_prompt_estimate_covers_every_message_and_grows_with_the_text(
    seen: list[tuple[int, int, bool]], chars: int, messages: int, more: int
) -> None:
    calib = calibrated(seen)
    got = budget.estimate_prompt(chars, messages, calib)
    assert got >= budget.MESSAGE_OVERHEAD_TOKENS * (messages + 1)
    assert budget.estimate_prompt(chars + more, messages, calib) >= got
    assert budget.estimate_prompt(chars, messages + 1, calib) > got


@st.composite
def previous_rounds(draw: st.DrawFn) -> dict[str, object]:
    return {
        "prev_prompt": draw(st.integers(0, 10**6)),
        "prev_completion": draw(st.integers(0, 10**5)),
        "generated_chars": draw(st.integers(0, 10**6)),
        "calib": calibrated(draw(observations)),
    }


@PROPS
@given(previous_rounds(), st.integers(-(10**6), 2 * 10**6))
@example({"prev_prompt": 7, "prev_completion": 3, "generated_chars": 10**6, "calib": Calibration()}, 10**6)
def test_the_next_prompt_is_the_last_prompt_plus_what_came_back_and_grows_with_the_request(
    prev: dict[str, object], delta: int
) -> None:
    def next_prompt(delta_chars: int) -> int:
        return next_prompt_tokens(delta_chars=delta_chars, **prev)  # type: ignore[arg-type]

    prompt, completion, generated = prev["prev_prompt"], prev["prev_completion"], prev["generated_chars"]
    assert isinstance(prompt, int) and isinstance(completion, int) and isinstance(generated, int)
    got = next_prompt(delta)
    assert got >= 0
    assert next_prompt(delta + 1) >= got  # a longer request never has fewer tokens
    assert next_prompt(0) == prompt
    if generated:
        assert next_prompt(generated) == prompt + completion  # exactly what the round generated came back
    if 0 <= delta <= generated:
        assert prompt <= got <= prompt + completion
    if delta < 0:  # a shorter request: fewer tokens, but never fewer than the removed text can account for
        calib = prev["calib"]
        assert isinstance(calib, Calibration)
        assert max(0, prompt - math.ceil(-delta * calib.ratio)) <= got <= prompt


# ---------------------------------------------------------------- cost

prices = st.builds(
    Prices,
    input_per_mtok=st.floats(0, 1000),
    output_per_mtok=st.floats(0, 1000),
    cached_input_per_mtok=st.one_of(st.none(), st.floats(0, 1000)),
)


@PROPS
@given(prices, tokens, tokens, tokens, st.integers(1, 10**5))
def test_a_round_costs_prompt_and_output_at_their_prices_and_more_tokens_never_cost_less(
    price: Prices, prompt: int, completion: int, cached: int, more: int
) -> None:
    cost = round_cost(price, prompt, completion, cached)
    assert cost is not None and cost >= 0
    assert round_cost(None, prompt, completion, cached) is None
    assert round_cost(price, prompt, completion, cached + more) == round_cost(
        price, prompt, completion, min(cached + more, prompt)
    )  # cached tokens never exceed the prompt
    assert round_cost(price, prompt, completion + more, cached) >= cost  # type: ignore[operator]
    expected = (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1_000_000
    assert math.isclose(
        round_cost(price, prompt, completion) or 0.0, expected, rel_tol=1e-12, abs_tol=5e-11
    )  # USD_DIGITS
    assert math.isclose(budget.prompt_cost(price, prompt), round_cost(price, prompt, 0) or 0.0, abs_tol=1e-12)


# ---------------------------------------------------------------- the gauge


@PROPS
@given(st.one_of(st.none(), st.integers(0, 10**7)), tokens, tokens, st.integers(1, 10**6))
@example(1000, 900, 0, 1)  # exactly at red
@example(1000, 750, 0, 1)  # exactly at amber
@example(1000, 1000, 0, 1)  # exactly full
def test_the_gauge_fraction_stays_within_0_and_1_and_its_colour_follows_it(
    window: int | None, prompt: int, generated: int, more: int
) -> None:
    def gauge(generated: int = generated) -> Gauge:
        return Gauge(window, prompt, generated, billed_input_tokens=0, cost=None, estimated=False)

    g = gauge()
    assert g.used == prompt + generated
    if not window:
        assert g.fraction is None and g.level == "ok"
        return
    assert g.remaining == max(0, window - g.used) and g.remaining >= 0
    assert g.fraction is not None and 0.0 <= g.fraction <= 1.0
    assert g.fraction == min(1.0, g.used / window)
    assert g.level == ("red" if g.fraction >= RED_AT else "amber" if g.fraction >= AMBER_AT else "ok")
    fuller = gauge(generated + more)
    assert fuller.fraction >= g.fraction and fuller.remaining <= g.remaining  # type: ignore[operator]
    order = ["ok", "amber", "red"]
    assert order.index(fuller.level) >= order.index(g.level)
