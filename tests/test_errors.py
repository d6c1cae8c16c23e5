"""core.wire.errors and core.wire.error_map: the tree, statuses, provider bodies, overflow wordings, Retry-After."""

from __future__ import annotations

import email.utils
import re
import time

import pytest

import core.wire.errors as errors
from core.wire.error_body import provider_message
from core.wire.error_map import error_from_body, error_from_response, retry_after_seconds
from core.wire.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextOverflowError,
    ContinuumError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PrefillUnsupportedError,
    RateLimitError,
    ServerError,
    StreamInterrupted,
    TransportError,
    ValidationError,
)
from core.wire.overflow import parse_context_overflow

URL = "http://127.0.0.1:8000/v1/chat/completions"

# ---------------------------------------------------------------- the tree


def test_every_exported_error_class_is_drawn_in_the_docstring_tree() -> None:
    classes = [n for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    missing = [n for n in classes if not re.search(rf"(── |^    ){n}\b", errors.__doc__ or "", re.M)]
    assert missing == []


def test_every_exported_error_class_descends_from_continuum_error() -> None:
    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert all(issubclass(cls, ContinuumError) for cls in classes)


def test_transport_failures_are_retryable_and_config_errors_are_not() -> None:
    assert StreamInterrupted("cut").retryable
    assert not errors.ConfigError("bad").retryable


def test_str_joins_message_and_hint_as_sentences() -> None:
    assert str(ContinuumError("it broke", "try again")) == "It broke. Try again."


def test_to_info_carries_kind_message_status_request_id_and_retryable() -> None:
    exc = error_from_response(503, {"error": {"message": "busy"}}, url=URL, request_id="req-1")
    info = exc.to_info()
    assert (info.kind, info.status, info.request_id, info.retryable, info.message) == (
        "ServerError",
        503,
        "req-1",
        True,
        str(exc),
    )


def test_redact_removes_the_secret_from_message_body_and_args() -> None:
    exc = error_from_response(401, {"error": {"message": "bad key sk-SECRET"}}, url=URL).redact("sk-SECRET")
    assert "sk-SECRET" not in repr((str(exc), exc.args, exc.body, exc.provider_message, exc.to_info()))


# ---------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (402, PaymentRequiredError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (422, ValidationError, False),
        (429, RateLimitError, True),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
        (408, APIStatusError, True),
        (409, APIStatusError, True),
        (418, APIStatusError, False),
    ],
)
def test_status_maps_to_class_and_retryability(status: int, cls: type, retryable: bool) -> None:
    exc = error_from_response(status, {"error": {"message": "nope"}}, url=URL)
    assert (type(exc), exc.status, exc.retryable) == (cls, status, retryable)


def test_message_names_the_status_the_url_and_the_provider_text() -> None:
    exc = error_from_response(500, {"error": {"message": "GPU on fire"}}, url=URL)
    assert "HTTP 500" in str(exc) and URL in str(exc) and "GPU on fire" in str(exc)


def test_401_hint_uses_the_provider_key_hint() -> None:
    exc = error_from_response(
        401,
        {"error": {"message": "Invalid key"}},
        url=URL,
        key_hint="set DEEPINFRA_API_KEY or paste a key in Settings",
    )
    assert str(exc).startswith("The server rejected the API key") and str(exc).endswith(
        "Check the key that was sent: set DEEPINFRA_API_KEY or paste a key in Settings."
    )


def test_a_key_rejected_by_a_custom_url_is_never_told_the_provider_needs_no_key() -> None:
    from core.services.providers import get_provider

    hint = get_provider("custom").key_hint()
    sent = error_from_response(401, {"error": {"message": "bad key"}}, url=URL, key_hint=hint)
    unsent = error_from_response(
        401, {"error": {"message": "no key"}}, url=URL, key_hint=hint, key_sent=False
    )
    assert "needs no key" not in str(sent) and "needs no key" not in str(unsent)
    assert "key that was sent" in str(sent) and "CONTINUUM_API_KEY" in str(sent)


def test_401_without_a_key_says_none_was_sent() -> None:
    exc = error_from_response(401, "Unauthorized", url=URL, key_sent=False)
    assert "none was sent" in str(exc)


def test_404_for_a_model_names_the_model_and_the_model_list() -> None:
    exc = error_from_response(404, {"error": {"message": "The model `x` does not exist"}}, url=URL, model="x")
    assert "Model `x` not found at http://127.0.0.1:8000/v1" in str(exc) and "model list" in str(exc)


def test_404_without_a_model_message_points_at_the_base_url() -> None:
    exc = error_from_response(404, "Not Found", url=URL, model="x")
    assert "should end in /v1" in str(exc)


def test_mistral_prefill_refusal_is_prefill_unsupported() -> None:
    msg = "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant"
    assert isinstance(error_from_response(400, {"message": msg}, url=URL), PrefillUnsupportedError)


def test_429_carries_retry_after_from_the_headers() -> None:
    exc = error_from_response(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "3"})
    assert isinstance(exc, RateLimitError) and exc.retry_after == 3.0


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"error": {"message": "m1", "type": "t", "code": "c"}}, "m1"),
        ({"error": "m2"}, "m2"),
        ({"detail": "m3"}, "m3"),
        ({"detail": [{"loc": ["body", "model"], "msg": "field required"}]}, "field required"),
        ({"message": "m5"}, "m5"),
        ("  plain text  ", "plain text"),
        (
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "502 Bad Gateway nginx",
        ),
    ],
)
def test_provider_message_is_found_in_every_body_shape(body: object, text: str) -> None:
    assert provider_message(body) == text


def test_error_object_in_a_stream_maps_its_numeric_code() -> None:
    exc = error_from_body({"error": {"message": "too fast", "code": 429}}, url=URL)
    assert isinstance(exc, RateLimitError) and "error object in the stream" in str(exc)


def test_error_object_in_a_stream_without_a_code_is_a_retryable_server_error() -> None:
    exc = error_from_body({"error": {"message": "upstream died"}}, url=URL)
    assert isinstance(exc, ServerError) and exc.retryable


def test_error_object_with_context_length_code_is_an_overflow() -> None:
    body = {"error": {"message": "too long", "code": "context_length_exceeded"}}
    assert isinstance(error_from_body(body, url=URL), ContextOverflowError)


# ---------------------------------------------------------------- overflow wordings

VLLM = (
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
    "(5000 in the messages, 4000 in the completion). Please reduce the length of the messages or completion."
)
OPENROUTER = (
    "This endpoint's maximum context length is 8192 tokens. However, you requested about 9000 tokens "
    "(5000 of text input, 4000 in the output). Please reduce the length of either one, or use the "
    '"middle-out" transform to compress your prompt automatically.'
)
DEEPINFRA = "Requested tokens (9000) exceed context window of 8192"
LLAMACPP = "the request exceeds the available context size, try increasing it"
LLAMACPP_BODY = {
    "error": {
        "code": 400,
        "message": LLAMACPP,
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 9000,
        "n_ctx": 8192,
    }
}


def numbers(exc: ContextOverflowError | None) -> tuple[int | None, ...]:
    assert exc is not None
    return (exc.prompt_tokens, exc.max_tokens, exc.context_length, exc.requested_tokens)


def test_vllm_wording_gives_every_number() -> None:
    assert numbers(parse_context_overflow(VLLM)) == (5000, 4000, 8192, 9000)


def test_openrouter_wording_gives_every_number() -> None:
    assert numbers(parse_context_overflow(OPENROUTER)) == (5000, 4000, 8192, 9000)


def test_deepinfra_wording_gives_total_and_window() -> None:
    assert numbers(parse_context_overflow(DEEPINFRA)) == (None, None, 8192, 9000)


def test_llamacpp_wording_takes_the_numbers_from_the_body() -> None:
    assert numbers(parse_context_overflow(LLAMACPP, LLAMACPP_BODY)) == (9000, None, 8192, None)


def test_openai_context_length_exceeded_code_is_an_overflow() -> None:
    msg = (
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "130000 tokens. Please reduce the length of the messages."
    )
    body = {"error": {"message": msg, "code": "context_length_exceeded"}}
    assert numbers(parse_context_overflow(msg, body)) == (130000, None, 128000, None)


def test_newer_vllm_wording_gives_prompt_max_tokens_and_window() -> None:
    msg = (
        "'max_tokens' or 'max_completion_tokens' is too large: 4000. This model's maximum context length "
        "is 8192 tokens and your request has 5000 input tokens (4000 > 8192 - 5000)."
    )
    assert numbers(parse_context_overflow(msg)) == (5000, 4000, 8192, 9000)


def test_a_400_that_is_not_about_context_is_not_an_overflow() -> None:
    assert (
        parse_context_overflow("temperature must be between 0 and 2", {"error": {"code": "invalid"}}) is None
    )


def test_overflow_without_numbers_is_still_an_overflow() -> None:
    exc = parse_context_overflow("Input is too long for this model's context window")
    assert (
        numbers(exc) == (None, None, None, None) and exc is not None and exc.fitting_max_tokens(100) is None
    )


def test_status_400_with_an_overflow_wording_maps_to_context_overflow() -> None:
    exc = error_from_response(400, {"error": {"message": DEEPINFRA}}, url=URL, request_id="r9")
    assert isinstance(exc, ContextOverflowError) and (exc.status, exc.request_id) == (400, "r9")


def test_overflow_message_shows_the_numbers_and_what_to_do() -> None:
    text = str(parse_context_overflow(VLLM))
    assert "prompt 5000 + max_tokens 4000 > window 8192" in text and "Lower max_tokens" in text


def test_fitting_max_tokens_from_full_numbers() -> None:
    exc = parse_context_overflow(VLLM)
    assert exc is not None and exc.fitting_max_tokens() == 3192


def test_fitting_max_tokens_from_a_total_needs_what_was_sent() -> None:
    exc = parse_context_overflow(DEEPINFRA)
    assert exc is not None and (exc.fitting_max_tokens(), exc.fitting_max_tokens(4000)) == (None, 3192)


def test_fitting_max_tokens_is_zero_when_the_prompt_alone_overflows() -> None:
    exc = parse_context_overflow(LLAMACPP, LLAMACPP_BODY)
    assert exc is not None and exc.fitting_max_tokens() == 0


def test_overflow_is_not_retryable() -> None:
    exc = parse_context_overflow(VLLM)
    assert exc is not None and not exc.retryable


# ---------------------------------------------------------------- Retry-After


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "3"}) == 0.25


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after_seconds({"Retry-After": when})
    assert wait is not None and 20 < wait <= 31


def test_no_or_garbled_retry_after_is_none() -> None:
    assert (retry_after_seconds({}), retry_after_seconds({"Retry-After": "soon"})) == (None, None)


def test_transport_error_tree_holds_the_timeouts() -> None:
    assert issubclass(errors.IdleTimeoutError, errors.TransportTimeoutError)
    assert issubclass(errors.TransportTimeoutError, TransportError)
