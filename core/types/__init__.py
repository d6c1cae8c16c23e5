"""The domain model shared by every part of Continuum.

A *run* is a bounded sequence of *rounds*, between which the user may *edit* the answer.
The engine (``core.continuation.engine``) turns a :class:`RunSpec` into a stream of
:data:`Event` objects; the UI, the command line, the store and the batch runner all consume
the same events. A finished (or interrupted) run is a :class:`RunResult`, whose
:meth:`RunResult.to_dict` is the JSON transcript documented in the README.

- :mod:`core.types.records`: RunSpec, Round, Edit, ErrorInfo, RunResult, the stop reasons
  and strategy names.
- :mod:`core.types.events`: stream deltas, the engine's events, CancelToken.
- :mod:`core.types.pieces`: a text given as the pieces it is made of (the answer so far as
  the rounds hold it, sent back without joining).

Nothing here does I/O, and nothing here ever holds an API key.
"""

from __future__ import annotations

from core.types.events import (
    CancelToken,
    Delta,
    DeltaKind,
    Event,
    Notice,
    Retrying,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
    StreamDelta,
    Usage,
)
from core.types.records import (
    STOP_REASONS,
    STRATEGIES,
    TRUNCATED_FINISH_REASONS,
    Edit,
    ErrorInfo,
    Prices,
    Round,
    RunResult,
    RunSpec,
    StopReason,
    StrategyName,
)

__all__ = [
    "STOP_REASONS",
    "STRATEGIES",
    "TRUNCATED_FINISH_REASONS",
    "CancelToken",
    "Delta",
    "DeltaKind",
    "Edit",
    "ErrorInfo",
    "Event",
    "Notice",
    "Prices",
    "Retrying",
    "Round",
    "RoundFinished",
    "RoundStarted",
    "RunFinished",
    "RunResult",
    "RunSpec",
    "RunStarted",
    "StopReason",
    "StrategyName",
    "StreamDelta",
    "Usage",
]
