"""Continuum's engine: long answers from LLM APIs by response continuation.

Never imports streamlit. The public API is what ``__all__`` names (a test locks
the list); everything else is internal and may change.

    from core import RunSpec, run
    spec = RunSpec(messages=[{"role": "user", "content": "Write 20000 tokens about tides"}],
                   provider="demo", base_url=demo.base_url, model="demo-32k", max_tokens=4096)
    for event in run(spec):
        ...
"""

from __future__ import annotations

from core.continuation.budget import MIN_ROUND_TOKENS, context_used, round_budget, round_cost
from core.continuation.engine import RetryPolicy, run
from core.continuation.probe import ProbeResult, probe
from core.continuation.strategies import CONTINUE_INSTRUCTION, STRATEGY_CLASSES, get_strategy
from core.continuation.templates import TEMPLATE_NAMES, render
from core.services.keys import find_api_key, redact, resolve_api_key
from core.services.providers import DEFAULT_PROVIDER, PROVIDERS, Provider, get_provider
from core.types import (
    STOP_REASONS,
    STRATEGIES,
    TRUNCATED_FINISH_REASONS,
    CancelToken,
    Delta,
    ErrorInfo,
    Event,
    Notice,
    Prices,
    Retrying,
    Round,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunResult,
    RunSpec,
    RunStarted,
    StreamDelta,
    Usage,
)
from core.wire.client import Client, ModelInfo, Stream, Timeouts
from core.wire.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CancelledError,
    ConfigError,
    ConnectError,
    ConnectTimeoutError,
    ContextOverflowError,
    ContinuumError,
    IdleTimeoutError,
    MalformedStreamError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PrefillUnsupportedError,
    ProtocolError,
    RateLimitError,
    RoundTimeoutError,
    ServerError,
    StreamInterrupted,
    TransportError,
    TransportTimeoutError,
    UnexpectedResponseError,
    ValidationError,
)
from core.wire.overflow import parse_context_overflow
from core.wire.sse import SSEDecoder, SSEEvent, iter_events

__all__ = [
    "CONTINUE_INSTRUCTION",
    "DEFAULT_PROVIDER",
    "MIN_ROUND_TOKENS",
    "PROVIDERS",
    "STOP_REASONS",
    "STRATEGIES",
    "STRATEGY_CLASSES",
    "TEMPLATE_NAMES",
    "TRUNCATED_FINISH_REASONS",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "CancelToken",
    "CancelledError",
    "Client",
    "ConfigError",
    "ConnectError",
    "ConnectTimeoutError",
    "ContextOverflowError",
    "ContinuumError",
    "Delta",
    "ErrorInfo",
    "Event",
    "IdleTimeoutError",
    "MalformedStreamError",
    "ModelInfo",
    "NotFoundError",
    "Notice",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PrefillUnsupportedError",
    "Prices",
    "ProbeResult",
    "ProtocolError",
    "Provider",
    "RateLimitError",
    "RetryPolicy",
    "Retrying",
    "Round",
    "RoundFinished",
    "RoundStarted",
    "RoundTimeoutError",
    "RunFinished",
    "RunResult",
    "RunSpec",
    "RunStarted",
    "SSEDecoder",
    "SSEEvent",
    "ServerError",
    "Stream",
    "StreamDelta",
    "StreamInterrupted",
    "Timeouts",
    "TransportError",
    "TransportTimeoutError",
    "UnexpectedResponseError",
    "Usage",
    "ValidationError",
    "context_used",
    "find_api_key",
    "get_provider",
    "get_strategy",
    "iter_events",
    "parse_context_overflow",
    "probe",
    "redact",
    "render",
    "resolve_api_key",
    "round_budget",
    "round_cost",
    "run",
]
