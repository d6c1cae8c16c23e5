"""The public API of `core` is chosen on purpose: this list changes only with intent."""

from __future__ import annotations

import ast
from pathlib import Path

import core

EXPECTED = {
    # the engine and its records
    "run", "RetryPolicy", "RunSpec", "Round", "RunResult", "Prices", "ErrorInfo", "Usage", "StreamDelta",
    "CancelToken", "Event", "RunStarted", "RoundStarted", "Delta", "Retrying", "Notice", "RoundFinished",
    "RunFinished", "STOP_REASONS", "STRATEGIES", "TRUNCATED_FINISH_REASONS",
    # strategies, templates, budget, probe
    "get_strategy", "STRATEGY_CLASSES", "CONTINUE_INSTRUCTION", "render", "TEMPLATE_NAMES",
    "context_used", "round_budget", "round_cost", "MIN_ROUND_TOKENS", "probe", "ProbeResult",
    # transport
    "Client", "Stream", "Timeouts", "ModelInfo", "SSEDecoder", "SSEEvent", "iter_events",
    "parse_context_overflow",
    # providers and keys
    "Provider", "PROVIDERS", "DEFAULT_PROVIDER", "get_provider", "find_api_key", "resolve_api_key",
    "redact",
    # the error tree
    "ContinuumError", "ConfigError", "CancelledError", "TransportError", "ConnectError",
    "TransportTimeoutError", "ConnectTimeoutError", "IdleTimeoutError", "RoundTimeoutError",
    "StreamInterrupted", "ProtocolError", "UnexpectedResponseError", "MalformedStreamError",
    "APIStatusError", "BadRequestError", "ContextOverflowError", "PrefillUnsupportedError",
    "AuthenticationError", "PaymentRequiredError", "PermissionDeniedError", "NotFoundError",
    "ValidationError", "RateLimitError", "ServerError",
}  # fmt: skip


def test_exported_members_are_exactly_the_chosen_api() -> None:
    assert set(core.__all__) == EXPECTED
    assert len(core.__all__) == len(set(core.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in core.__all__ if not hasattr(core, name)]
    assert missing == []


def test_core_never_imports_streamlit() -> None:
    offenders = []
    for path in Path(core.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "streamlit" for name in names):
                offenders.append(str(path))
    assert offenders == []
