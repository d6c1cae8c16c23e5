"""The round table (a pandas DataFrame) and the two charts (Altair, shipped with Streamlit)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import core.services.export as export
from core.services.jobs import Snapshot

INPUT = "input (re-sent each round)"
OUTPUT = "output"
KIND_COLORS = alt.Scale(domain=[INPUT, OUTPUT], range=["#f08c00", "#4c6ef5"])


def _tokens(value: int, estimated: bool) -> str:
    return f"≈{value:,}" if estimated else f"{value:,}"


def round_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The on-screen table: the CSV's rows, estimates marked with ≈."""
    return pd.DataFrame(
        {
            "Round": [r["round"] for r in rows],
            "Input": [_tokens(r["input_tokens"], r["input_estimated"]) for r in rows],
            "Output": [_tokens(r["output_tokens"], r["output_estimated"]) for r in rows],
            "Counts": [r["token_source"] for r in rows],
            "Finish": [r["finish_reason"] or "—" for r in rows],
            "TTFT": [r["ttft_s"] for r in rows],
            "Tok/s": [r["tokens_per_s"] for r in rows],
            "Time": [r["duration_s"] for r in rows],
            "Cost": [r["cost_usd"] for r in rows],
            "Flags": [
                " ".join(x for x in (r["seam_flags"], "error" if r["error"] else "") if x) for r in rows
            ],
        }
    )


def tokens_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    data = pd.DataFrame(
        [{"Round": r["round"], "kind": INPUT, "tokens": r["input_tokens"]} for r in rows]
        + [{"Round": r["round"], "kind": OUTPUT, "tokens": r["output_tokens"]} for r in rows]
    )
    return (
        alt.Chart(data, title="Tokens per round: input vs output")
        .mark_bar()
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("kind:N"),
            y=alt.Y("tokens:Q", title="tokens"),
            color=alt.Color("kind:N", title=None, scale=KIND_COLORS, legend=alt.Legend(orient="top")),
            tooltip=["Round", "kind", alt.Tooltip("tokens:Q", format=",")],
        )
        .properties(height=240)
    )


def context_chart(rows: list[dict[str, Any]], window: int | None) -> alt.LayerChart | alt.Chart:
    data = pd.DataFrame(
        {
            "Round": [r["round"] for r in rows],
            "context used": [r["input_tokens"] + r["output_tokens"] for r in rows],
        }
    )
    used = (
        alt.Chart(data, title="Context used vs the window")
        .mark_area(line={"color": "#4c6ef5"}, point={"color": "#4c6ef5"}, color="#4c6ef5", opacity=0.3)
        .encode(
            x=alt.X("Round:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("context used:Q", title="tokens"),
            tooltip=["Round", alt.Tooltip("context used:Q", format=",")],
        )
        .properties(height=200)
    )
    if not window:
        return used
    rule = (
        alt.Chart(pd.DataFrame({"window": [window]}))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="window:Q", tooltip=[alt.Tooltip("window:Q", format=",", title="window")])
    )
    # LayerChart itself, not alt.layer(): that one may hoist shared facets into a FacetChart (none here).
    return alt.LayerChart(layer=[used, rule])


def render_details(snap: Snapshot) -> None:
    result = snap.to_result()
    rows = export.round_rows(result)
    if not rows:
        st.caption("The round table fills in as rounds finish.")
        return
    st.dataframe(
        round_table(rows),
        hide_index=True,
        column_config={
            "Round": st.column_config.NumberColumn(width="small"),
            "Input": st.column_config.TextColumn(help="Input tokens billed for the round (≈: estimated)"),
            "Output": st.column_config.TextColumn(help="Output tokens of the round (≈: estimated)"),
            "Counts": st.column_config.TextColumn(
                help="Where the token counts came from: the server's usage, or Continuum's estimate "
                "(the server sent none, or numbers that cannot be true, which are then ignored)"
            ),
            "Finish": st.column_config.TextColumn(help="The server's finish_reason"),
            "TTFT": st.column_config.NumberColumn(format="%.2f s", help="Time to first token"),
            "Tok/s": st.column_config.NumberColumn(format="%.0f", help="Output tokens per second"),
            "Time": st.column_config.NumberColumn(format="%.1f s", help="Duration of the round"),
            "Cost": st.column_config.NumberColumn(format="$%.4f", help="Estimated from the listed prices"),
            "Flags": st.column_config.TextColumn(help="Seam checks that fired (overlap, restart…)"),
        },
    )
    if any(r["input_estimated"] or r["output_estimated"] for r in rows):
        st.caption(
            "≈ marks token counts estimated by Continuum: the server reported no usage, or counts outside "
            "what the request allowed (see Counts)."
        )
    st.altair_chart(tokens_chart(rows), width="stretch", height=320)
    st.altair_chart(context_chart(rows, snap.spec.context_window), width="stretch", height=280)
