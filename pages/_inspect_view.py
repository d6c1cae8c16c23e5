"""Pieces of the Inspect page: a seam card, per-round charts, and two runs compared.

Numbers come from :mod:`core.services.inspect`; this module only draws them (Altair, as
the Studio does; no other charting library).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import core.services.export as export
from core.services import compare, inspect
from core.types import RunResult
from pages import _charts as charts
from pages._blocks import inert, inert_code
from pages._format import money
from pages._text_streams import edit_box

A_COLOR = "#4c6ef5"
B_COLOR = "#f08c00"
SINGLE_COLOR = "#868e96"
FLAG_COLORS = {
    "restart": "red",
    "repetition": "red",
    "overlap": "orange",
    "open_fence": "violet",
    "open_table": "violet",
}
WHITESPACE_LEGEND = "Whitespace drawn as · space, → tab, ¶ line break."


# ---------------------------------------------------------------- seams


def _visible(text: str, *, cut_before: bool = False, cut_after: bool = False) -> str:
    # A zero-width space after each drawn space lets long lines wrap between words.
    shown = inspect.visible_whitespace(text).replace("·", "·\u200b")
    return f"{'…' if cut_before else ''}{shown}{'…' if cut_after else ''}"


def seam_heading(seam: inspect.Seam) -> str:
    parts = [f"**Round {seam.before_index} → {seam.after_index}**"]
    where = "reasoning" if seam.in_reasoning else "answer"
    est = "≈" if seam.tokens_estimated else ""
    if taken_over(seam):  # its place in the answer went with the edit
        parts.append(f"after {est}{seam.tokens:,} tokens")
    else:
        parts.append(f"{where} character {seam.offset:,} · after {est}{seam.tokens:,} tokens")
    if seam.finish_reason:
        parts.append(inert_code(seam.finish_reason))
    badges = [f":{FLAG_COLORS.get(kind, 'orange')}-badge[{kind.replace('_', ' ')}]" for kind in seam.kinds]
    if seam.edit is not None:
        badges.append(":blue-badge[your edit]")
    if seam.recovery:
        badges.append(":blue-badge[recovery]")
    if seam.in_reasoning:
        badges.append(":violet-badge[in reasoning]")
    if seam.tokens_estimated:
        badges.append(":gray-badge[≈ estimated tokens]")
    if not seam.flagged and seam.edit is None:
        badges.append(":green-badge[clean]")
    return " · ".join(parts) + " &nbsp; " + " ".join(badges)


EDITED_AWAY = "The text of both rounds is now part of your edit after round {after}."
TAKEN = "Its text is part of your edit after round {after}."


def taken_over(seam: inspect.Seam) -> bool:
    """Both sides of ``seam`` went into a later edit (the rounds keep no text of their own)."""
    return seam.edited_away is not None and seam.edit is None and not seam.before


def seam_card(seam: inspect.Seam) -> None:
    with st.container(border=True, key=f"seam_{seam.after_index}"):
        st.markdown(seam_heading(seam))
        if taken_over(seam):
            st.caption(EDITED_AWAY.format(after=seam.edited_away))
            return
        if seam.edit is not None:
            edit_box(st, seam.edit, seam.after_index)  # as the Rounds tab shows it
        left, right = st.columns(2)
        with left:
            st.caption(
                f"End of round {seam.before_index}"
                if seam.edit is None
                else "End of the answer as you edited it"
            )
            st.code(
                _visible(seam.before, cut_before=seam.before_cut) or "(empty)", language=None, wrap_lines=True
            )
            if seam.held_back:
                st.caption(
                    f"Held back from round {seam.before_index} and sent for round {seam.after_index} to regenerate"
                )
                st.code(_visible(seam.held_back), language=None, wrap_lines=True)
        with right:
            st.caption(f"Start of round {seam.after_index}")
            if seam.after:
                st.code(_visible(seam.after, cut_after=seam.after_cut), language=None, wrap_lines=True)
            elif seam.discarded:
                st.code(
                    _visible(seam.discarded, cut_after=seam.discarded_chars > len(seam.discarded)),
                    language=None,
                    wrap_lines=True,
                )
                st.caption(
                    f":red[Discarded: the round started the answer over ({seam.discarded_chars:,} characters "
                    "dropped; the first ones are shown).]"
                )
            elif seam.edited_away is not None:
                st.caption(TAKEN.format(after=seam.edited_away))
            else:
                st.caption("This round added no text.")
        for flag in seam.flags:
            kind = str(flag.get("kind", "seam"))
            message = str(flag.get("message", ""))
            text = f"**{kind.replace('_', ' ').capitalize()}**: {inert(message)}"
            excerpt = str(flag.get("excerpt") or "")
            if excerpt and kind != "restart":  # a restart's excerpt is shown above, as discarded
                text += f" — {inert_code(_visible(excerpt))}"
            if kind in ("restart", "repetition"):
                st.error(text, icon=":material/warning:")
            else:
                st.warning(text, icon=":material/info:")


# ---------------------------------------------------------------- per-round charts


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows).rename(columns={"round": "Round"})


def ttft_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    data = _frame(rows)
    return (
        alt.Chart(data, title="Time to first token")
        .mark_bar(color=A_COLOR)
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("ttft_s:Q", title="seconds"),
            tooltip=["Round", alt.Tooltip("ttft_s:Q", format=".2f", title="TTFT (s)")],
        )
        .properties(height=220)
    )


def rate_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    data = _frame(rows)
    return (
        alt.Chart(data, title="Output tokens per second")
        .mark_line(point=True, color=A_COLOR)
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("tokens_per_s:Q", title="tokens/s"),
            tooltip=["Round", alt.Tooltip("tokens_per_s:Q", format=",.0f", title="tokens/s")],
        )
        .properties(height=220)
    )


BILLED = "continuation (cumulative)"
SINGLE = "one request, same length"


def billed_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    data = pd.DataFrame(
        [{"Round": r["round"], "series": BILLED, "tokens": r["cumulative_input"]} for r in rows]
        + [{"Round": r["round"], "series": SINGLE, "tokens": r["single_request_input"]} for r in rows]
    )
    return (
        alt.Chart(data, title="Input billed: continuation vs one request")
        .mark_line(point=True)
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("tokens:Q", title="input tokens"),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=[BILLED, SINGLE], range=[B_COLOR, SINGLE_COLOR]),
                legend=alt.Legend(orient="top", labelLimit=260, symbolType="stroke", symbolStrokeWidth=3),
            ),
            strokeDash=alt.StrokeDash(
                "series:N", scale=alt.Scale(domain=[BILLED, SINGLE], range=[[1, 0], [6, 4]]), legend=None
            ),
            tooltip=["Round", "series", alt.Tooltip("tokens:Q", format=",")],
        )
        .properties(height=220)
    )


def billed_summary(result: RunResult) -> str:
    """What continuation cost over one uncapped request, in tokens and dollars a user can act on."""
    found = inspect.overhead(result)
    if found is None:
        return ""
    est = "≈" if found.estimated else ""
    rounds = f"{found.rounds} round{'s' if found.rounds != 1 else ''}"
    text = f"Over {rounds} the input billed is {est}{found.input_billed:,} tokens"
    if found.rounds == 1:
        return text + ": one request, so continuation added nothing."
    text += (
        f": {est}{found.extra_input_tokens:,} more than one uncapped request writing the same answer "
        f"would bill (its {est}{found.single_request_input:,}-token prompt, once), because every round "
        "re-sends the prompt and the answer so far"
    )
    if found.extra_cost is not None:
        text += f". At the listed input price that is {est}{money(found.extra_cost)} extra"
    return text + "."


CHART_HEIGHT = 300

ROUND_TABLE_COLUMNS = {  # as the Studio's round table (pages/_charts.render_details)
    "Round": st.column_config.NumberColumn(width="small"),
    "Input": st.column_config.TextColumn(help="Input tokens billed for the round (≈: estimated)"),
    "Output": st.column_config.TextColumn(help="Output tokens of the round (≈: estimated)"),
    "Finish": st.column_config.TextColumn(help="The server's finish_reason"),
    "TTFT": st.column_config.NumberColumn(format="%.2f s", help="Time to first token"),
    "Tok/s": st.column_config.NumberColumn(format="%.0f", help="Output tokens per second"),
    "Time": st.column_config.NumberColumn(format="%.1f s", help="Duration of the round"),
    "Cost": st.column_config.NumberColumn(format="$%.4f", help="Estimated from the listed prices"),
    "Flags": st.column_config.TextColumn(help="Seam checks that fired (overlap, restart…)"),
}


def round_charts(result: RunResult) -> None:
    rows = inspect.round_series(result)
    if not rows:
        st.caption("This run has no rounds.")
        return
    st.markdown(billed_summary(result))
    top_left, top_right = st.columns(2)
    top_left.altair_chart(
        charts.tokens_chart(export.round_rows(result)), width="stretch", height=CHART_HEIGHT
    )
    top_right.altair_chart(billed_chart(rows), width="stretch", height=CHART_HEIGHT)
    bottom_left, bottom_right = st.columns(2)
    bottom_left.altair_chart(ttft_chart(rows), width="stretch", height=CHART_HEIGHT)
    bottom_right.altair_chart(rate_chart(rows), width="stretch", height=CHART_HEIGHT)
    if result.tokens_estimated:
        st.caption("≈ marks token counts estimated by Continuum because the server reported no usage.")
    st.dataframe(
        charts.round_table(export.round_rows(result)), hide_index=True, column_config=ROUND_TABLE_COLUMNS
    )


# ---------------------------------------------------------------- two runs


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "cost":
        return f"${value:,.4f}"
    if key == "input_vs_one_request":
        return f"{value:.1f}×"
    if isinstance(value, float):
        if value < 1:
            return f"{value:.3f}"
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("_", " ")


def totals_frame(a: RunResult, b: RunResult) -> pd.DataFrame:
    rows = compare.compare_totals(a, b)
    cells = [(_cell(r["key"], r["a"]), _cell(r["key"], r["b"])) for r in rows]
    return pd.DataFrame(
        {
            "": [r["metric"] for r in rows],
            "A": [ca for ca, _ in cells],
            "B": [cb for _, cb in cells],
            "Same": ["✓" if ca == cb else "≠" for ca, cb in cells],  # as shown: 0.00 and 0.00 agree
        }
    )


def overlay_chart(rows: list[dict[str, Any]], field: str, title: str, y_title: str) -> alt.Chart:
    data = _frame(rows)
    return (
        alt.Chart(data, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{field}:Q", title=y_title),
            color=alt.Color(
                "run:N",
                title=None,
                scale=alt.Scale(domain=["A", "B"], range=[A_COLOR, B_COLOR]),
                legend=alt.Legend(orient="top"),
            ),
            strokeDash=alt.StrokeDash(  # B dashed: where the runs agree, both lines still show
                "run:N", scale=alt.Scale(domain=["A", "B"], range=[[1, 0], [6, 3]]), legend=None
            ),
            tooltip=["run", "Round", alt.Tooltip(f"{field}:Q", format=",.1f")],
        )
        .properties(height=220)
    )


def difference(a: RunResult, b: RunResult) -> None:
    diff = compare.first_difference(a.text, b.text)
    if diff.identical:
        st.success(f"The two answers are identical ({diff.a_length:,} characters).", icon=":material/check:")
        return
    assert diff.offset is not None
    st.markdown(
        f"The answers agree for the first **{diff.offset:,}** characters, then differ at line {diff.line:,}, "
        f"column {diff.column:,} (A has {diff.a_length:,} characters, B {diff.b_length:,})."
    )
    if diff.before:
        st.caption("Shared text just before the difference")
        st.code(
            _visible(diff.before, cut_before=diff.offset > len(diff.before)), language=None, wrap_lines=True
        )
    left, right = st.columns(2)
    with left:
        st.caption("A goes on with")
        st.code(
            _visible(diff.a, cut_after=diff.a_length > diff.offset + len(diff.a)) or "(the end)",
            language=None,
            wrap_lines=True,
        )
    with right:
        st.caption("B goes on with")
        st.code(
            _visible(diff.b, cut_after=diff.b_length > diff.offset + len(diff.b)) or "(the end)",
            language=None,
            wrap_lines=True,
        )


def comparison(a: RunResult, b: RunResult) -> None:
    head_a, head_b = st.columns(2)
    head_a.markdown(f":blue-badge[A] {inert(compare.run_label(a))}")
    head_a.caption(inert(a.spec.title or a.spec.prompt[:120]))
    head_b.markdown(f":orange-badge[B] {inert(compare.run_label(b))}")
    head_b.caption(inert(b.spec.title or b.spec.prompt[:120]))
    if a.spec.prompt != b.spec.prompt:
        st.caption(":material/info: The two runs have different prompts.")
    totals = totals_frame(a, b)
    st.dataframe(
        totals,
        hide_index=True,
        width="stretch",
        height=35 * (len(totals) + 1) + 3,
        column_config={"Same": st.column_config.TextColumn(width=60)},
    )
    rows = compare.compare_series(a, b)
    if rows:
        plots = [
            ("output_tokens", "Output tokens per round", "tokens"),
            ("cumulative_input", "Input billed so far", "input tokens"),
            ("tokens_per_s", "Output tokens per second", "tokens/s"),
            ("ttft_s", "Time to first token", "seconds"),
        ]
        for i in range(0, len(plots), 2):
            for column, (field, title, y_title) in zip(st.columns(2), plots[i : i + 2], strict=True):
                column.altair_chart(
                    overlay_chart(rows, field, title, y_title), width="stretch", height=CHART_HEIGHT
                )
    st.markdown("##### First difference in the text")
    difference(a, b)
