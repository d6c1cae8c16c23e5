"""Numbers as every page shows them (one formatter each, so the pages agree)."""

from __future__ import annotations


def money(value: float | None) -> str:
    """USD: four decimals below a dollar (continuation costs are often fractions of a cent), else two."""
    if value is None:
        return "—"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
