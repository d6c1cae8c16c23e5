"""One error tree for everything that can go wrong talking to a model server.

::

    ContinuumError                  (message, hint) · .retryable · .to_info()
    ├── ConfigError                 bad usage or settings; never retried
    ├── CancelledError              the user stopped the run
    ├── TransportError              no (complete) response; retryable
    │   ├── ConnectError            refused, unknown host, TLS, redirect loop (.retryable varies)
    │   ├── TransportTimeoutError
    │   │   ├── ConnectTimeoutError
    │   │   ├── IdleTimeoutError    no bytes for Timeouts.idle seconds
    │   │   └── RoundTimeoutError   the round ran past Timeouts.round
    │   └── StreamInterrupted       the stream ended without [DONE] or finish_reason
    │       └── EmptyStreamError    a 200 stream with no chunk at all
    ├── ProtocolError               the server answered, but not as an API would
    │   ├── UnexpectedResponseError an HTML page, JSON where SSE was expected…
    │   ├── MalformedStreamError    a chunk that is not JSON
    │   └── PrefillIgnoredError     a round started a new answer instead of continuing
    └── APIStatusError              (status, provider_message, request_id, body)
        ├── BadRequestError         400
        │   ├── ContextOverflowError    prompt + max_tokens do not fit the window
        │   └── PrefillUnsupportedError the server refuses a trailing assistant message
        ├── AuthenticationError     401
        ├── PaymentRequiredError    402
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── ValidationError         422
        ├── RateLimitError          429 (.retry_after seconds)
        └── ServerError             5xx; 408 and 409 are retryable APIStatusErrors too

Every message says what arrived and what to do next, and never contains the
API key: the client scrubs it with :meth:`ContinuumError.redact` before an
error leaves it. Library exceptions are translated at the boundary
(``raise X(...) from exc``), so callers only ever catch these classes.

:mod:`core.wire.error_map` picks the class for a status code and body (pure;
reading the body is :mod:`core.wire.error_body`, the context-overflow wordings
:mod:`core.wire.overflow`); :mod:`core.wire.boundary` translates httpx
exceptions. Both are used by :mod:`core.wire.client`.
"""

from __future__ import annotations

from typing import Any

from core.types import ErrorInfo
from core.wire.redaction import REDACTED, redact, redact_any

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "CancelledError",
    "ConfigError",
    "ConnectError",
    "ConnectTimeoutError",
    "ContextOverflowError",
    "ContinuumError",
    "EmptyStreamError",
    "IdleTimeoutError",
    "MalformedStreamError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PrefillIgnoredError",
    "PrefillUnsupportedError",
    "ProtocolError",
    "RateLimitError",
    "RoundTimeoutError",
    "ServerError",
    "StreamInterrupted",
    "TransportError",
    "TransportTimeoutError",
    "UnexpectedResponseError",
    "ValidationError",
    "redact",
]


def sentence(text: str) -> str:
    """``text`` capitalised and ending in a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


class ContinuumError(Exception):
    """Root of every error Continuum raises. ``str(exc)`` is message plus hint."""

    retryable = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.hint:
            return f"{sentence(self.message)} {sentence(self.hint)}"
        return self.message

    @property
    def status(self) -> int | None:
        return None

    @property
    def request_id(self) -> str | None:
        return None

    def redact(self, secret: str | None) -> ContinuumError:
        """Remove ``secret`` from every text this error carries; returns self."""
        if secret:
            for name, value in list(vars(self).items()):
                if isinstance(value, str | dict | list):
                    setattr(self, name, redact_any(value, secret))
                elif isinstance(value, bytes):
                    setattr(self, name, value.replace(secret.encode(), REDACTED.encode()))
            self.args = (str(self),)
        return self

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(
            kind=type(self).__name__,
            message=str(self),
            status=self.status,
            request_id=self.request_id,
            retryable=self.retryable,
        )


class ConfigError(ContinuumError):
    """Bad usage or settings (no base URL, an invalid body…). Never retried."""


class CancelledError(ContinuumError):
    """The run was stopped on request."""

    def __init__(self, message: str = "Stopped on request.", hint: str | None = None) -> None:
        super().__init__(message, hint)


# ------------------------------------------------------------------ transport


class TransportError(ContinuumError):
    """No response, or the response broke off. The text so far is valid; retry."""

    retryable = True


class ConnectError(TransportError):
    """Could not open a connection (refused, unknown host, TLS, redirect loop).

    ``retryable`` is False where trying again cannot help: a host name that does
    not exist, a TLS handshake or certificate failure, a redirect loop. A refused
    connection or a temporary DNS failure is retried.
    """

    def __init__(self, message: str, hint: str | None = None, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message, hint)


class TransportTimeoutError(TransportError):
    """A timeout (see :class:`core.wire.client.Timeouts`)."""


class ConnectTimeoutError(TransportTimeoutError):
    pass


class IdleTimeoutError(TransportTimeoutError):
    """The server sent nothing, not even a keep-alive comment, for too long."""


class RoundTimeoutError(TransportTimeoutError):
    """The whole round took longer than the round ceiling."""


class StreamInterrupted(TransportError):
    """The stream ended without ``[DONE]`` and without a finish_reason."""


class EmptyStreamError(StreamInterrupted):
    """A 200 stream that ended before its first chunk (llama.cpp-family servers answer a request
    that does not fit this way). The round asks once more without streaming to learn why."""


# ------------------------------------------------------------------ protocol


class ProtocolError(ContinuumError):
    """The server answered, but not the way an OpenAI-compatible API does."""


class UnexpectedResponseError(ProtocolError):
    def __init__(
        self, message: str, hint: str | None = None, *, content_type: str = "", snippet: str = ""
    ) -> None:
        self.content_type = content_type
        self.snippet = snippet
        super().__init__(message, hint)


class MalformedStreamError(ProtocolError):
    """A stream chunk that is not valid JSON. Often transient: the engine may retry."""

    retryable = True

    def __init__(self, message: str, hint: str | None = None, *, data: bytes = b"") -> None:
        self.data = data
        super().__init__(message, hint)


class PrefillIgnoredError(ProtocolError):
    """A round started a new answer instead of continuing the one sent: the server ignores the
    prefill with this strategy (found by a seam check, not sent by the server)."""


# ------------------------------------------------------------------ status


class APIStatusError(ContinuumError):
    """The server answered with an error status (or an error object in a stream)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int,
        provider_message: str = "",
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        self._status = status
        self.provider_message = provider_message
        self._request_id = request_id
        self.body = body
        super().__init__(message, hint)

    @property
    def status(self) -> int:
        return self._status

    @property
    def request_id(self) -> str | None:
        return self._request_id

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self._status in (408, 409, 429) or self._status >= 500


class BadRequestError(APIStatusError):
    pass


class ContextOverflowError(BadRequestError):
    """The prompt plus ``max_tokens`` do not fit the context window.

    Numbers are ``None`` when the server's wording does not give them.
    ``requested_tokens`` is prompt + max_tokens as the server counted it.
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int = 400,
        provider_message: str = "",
        request_id: str | None = None,
        body: Any = None,
        prompt_tokens: int | None = None,
        max_tokens: int | None = None,
        context_length: int | None = None,
        requested_tokens: int | None = None,
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length
        if requested_tokens is None and prompt_tokens is not None and max_tokens is not None:
            requested_tokens = prompt_tokens + max_tokens
        self.requested_tokens = requested_tokens
        super().__init__(
            message,
            hint,
            status=status,
            provider_message=provider_message,
            request_id=request_id,
            body=body,
        )

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return False

    def fitting_max_tokens(self, sent_max_tokens: int | None = None) -> int | None:
        """The largest max_tokens that fits, when the numbers allow computing it.

        ``sent_max_tokens`` (what the request asked for) lets a total-only wording
        ("requested 9000, window 8192") give the prompt size.
        """
        if self.context_length is None:
            return None
        prompt = self.prompt_tokens
        if prompt is None and self.requested_tokens is not None:
            sent = self.max_tokens if self.max_tokens is not None else sent_max_tokens
            if sent is not None:
                prompt = self.requested_tokens - sent
        if prompt is None:
            return None
        return max(self.context_length - prompt, 0)


class PrefillUnsupportedError(BadRequestError):
    """The server refuses a conversation ending in an assistant message."""


class AuthenticationError(APIStatusError):
    pass


class PaymentRequiredError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ValidationError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    def __init__(self, message: str, hint: str | None = None, *, retry_after: float | None = None, **kw: Any):
        self.retry_after = retry_after
        super().__init__(message, hint, **kw)


class ServerError(APIStatusError):
    """5xx. ``retry_after``: seconds a 503 (or any 5xx) asked to wait with Retry-After, if it did."""

    def __init__(self, message: str, hint: str | None = None, *, retry_after: float | None = None, **kw: Any):
        self.retry_after = retry_after
        super().__init__(message, hint, **kw)
