"""The demo models: context windows, output cap and (made-up) prices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoModel:
    id: str
    context_length: int
    input_price: float  # USD per 1M tokens (demo prices, nothing is billed)
    output_price: float
    reasoner: bool = False


OUTPUT_CAP = 4096  # max_tokens per request; larger requests are lowered to this silently

MODELS: dict[str, DemoModel] = {
    m.id: m
    for m in (
        DemoModel("demo", 8192, 0.10, 0.40),
        DemoModel("demo-32k", 32768, 0.20, 0.80),
        DemoModel("demo-reasoner", 32768, 0.50, 2.00, reasoner=True),
        DemoModel("demo-1m", 1_048_576, 0.30, 1.20),  # a 1M-token answer in one run (~256 rounds)
    )
}
CREATED = 1_735_689_600  # 2025-01-01, the "created" of every model and response
