"""OpenAI-compatible HTTP: requests, streams of deltas, error mapping.

``Client`` owns one pooled ``httpx.Client``; ``Client.stream_chat`` returns a
lazy :class:`Stream` of :class:`core.types.StreamDelta` (the request goes out on
the first ``next()``), which any thread may :meth:`Stream.abort`. Every failure
leaves as a :mod:`core.wire.errors` exception with the API key scrubbed from it;
callers never see httpx types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from core.bounds import check
from core.types import Prices
from core.wire import pinning
from core.wire.body import encode_body
from core.wire.boundary import (
    MAX_REDIRECTS,
    host_error,
    request_id,
    transport_error,
    unexpected_response,
)
from core.wire.error_map import error_from_body, error_from_response, parse_body
from core.wire.errors import APIStatusError, ConfigError, ContinuumError
from core.wire.guard import check_base_url, event_hooks
from core.wire.pool_transport import shared_ssl_context
from core.wire.redaction import remember_secret
from core.wire.stream import Stream

__all__ = ["Client", "ModelInfo", "Stream", "Timeouts", "stream_payload"]

USER_AGENT = "continuum/0.1"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``idle``: longest gap between bytes (keep-alive comments count);
    ``round``: ceiling for a whole streamed round."""

    connect: float = 10.0
    idle: float = 60.0
    round: float = 900.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "round"):
            problem = check(f"{name}_timeout", getattr(self, name))
            if problem:
                raise ConfigError(problem, "Timeouts are in seconds, e.g. connect 10, idle 60, round 900.")


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the server's model list; None where the server says nothing."""

    id: str
    context_length: int | None = None
    max_output: int | None = None
    prices: Prices | None = None
    owned_by: str | None = None


def _normalise_base_url(base_url: str) -> str:
    url = (base_url or "").strip().rstrip("/")
    if not url:
        raise ConfigError("No base URL is set.", "Choose a provider or enter a base URL in Settings.")
    if not url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"The base URL '{url}' does not start with http:// or https://.",
            "Enter the full address, e.g. http://localhost:8000/v1.",
        )
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if any(c.isspace() for c in url):
        raise ConfigError(f"The base URL '{url}' contains spaces.", "Check it in Settings.")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        raise ConfigError(f"The base URL '{url}' is not valid ({exc}).", "Check it in Settings.") from exc
    if not host:
        raise ConfigError(f"The base URL '{url}' has no host name.", "Check it in Settings.")
    check_base_url(url)  # CONTINUUM_ALLOWED_BASE_URLS and, on a shared server, no internal addresses
    return url


class Client:
    """An OpenAI-compatible server at ``base_url`` (ending in /v1)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        key_hint: str | None = None,
    ) -> None:
        self.base_url = _normalise_base_url(base_url)
        self.timeouts = timeouts or Timeouts()
        self.key_hint = key_hint
        api_key = (api_key or "").strip() or None
        self._secrets = [api_key] if api_key else []
        all_headers = {"User-Agent": USER_AGENT}
        for name, value in (headers or {}).items():
            all_headers[name] = value
            if any(word in name.lower() for word in ("auth", "key", "token", "secret")):
                self._secrets.append(value)
        if api_key:
            if not api_key.isascii() or any(c in api_key for c in "\r\n"):
                raise ConfigError(
                    "The API key contains characters that cannot be sent in an HTTP header.",
                    "Paste the key again without spaces or line breaks.",
                )
            all_headers["Authorization"] = f"Bearer {api_key}"
        self.key_sent = api_key is not None
        for secret in self._secrets:
            remember_secret(secret)  # scrubbed from library debug logs (core.wire.redaction)
        t = self.timeouts
        self._http = httpx.Client(
            headers=all_headers,
            timeout=httpx.Timeout(t.idle, connect=t.connect, pool=t.connect),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            verify=shared_ssl_context(),  # built once per process, not per client (~50 ms each)
            transport=transport or pinning.transport(),  # shared server: connects to checked addresses only
            event_hooks=event_hooks(),  # core.wire.guard: every hop, redirects included, is checked
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The key and secret header values this client sends (to keep them out of any text)."""
        return tuple(self._secrets)

    # ------------------------------------------------------------- helpers

    def scrub(self, exc: ContinuumError) -> ContinuumError:
        """Remove the key (and secret headers) from ``exc``; returns it."""
        for secret in self._secrets:
            exc.redact(secret)
        return exc

    def status_error(self, response: httpx.Response, raw: bytes, model: str | None) -> ContinuumError:
        headers = dict(response.headers)
        exc = error_from_response(
            response.status_code,
            parse_body(raw),
            headers=headers,
            url=str(response.request.url),
            model=model,
            key_sent=self.key_sent,
            key_hint=self.key_hint,
            request_id=request_id(response),
        )
        if response.history:
            first = response.history[0].request.url
            exc.hint = (exc.hint or "") + f" The request was redirected from {first}; use the final URL."
            exc.args = (str(exc),)
        return exc

    def body_error(self, body: Any, url: str, model: str | None, rid: str | None) -> ContinuumError:
        return error_from_body(
            body, url=url, model=model, key_sent=self.key_sent, key_hint=self.key_hint, request_id=rid
        )

    def _request_json(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, read: float | None = None
    ) -> Any:
        """One plain request; ``read`` is the read timeout (default: the idle timeout)."""
        url = self.base_url + path
        t = replace(self.timeouts, idle=read or self.timeouts.idle)
        try:
            try:
                headers, content = encode_body(body) if body is not None else ({}, None)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"The request body cannot be sent as JSON: {exc}.") from exc
            try:
                response = self._http.request(
                    method,
                    url,
                    content=content,
                    headers=headers,
                    timeout=httpx.Timeout(t.idle, connect=t.connect),
                )
            except httpx.HTTPError as exc:
                raise transport_error(exc, url, t, started=False) from exc
            except UnicodeError as exc:
                raise host_error(exc, url) from exc
            model = body.get("model") if body else None
            if response.status_code >= 400:
                raise self.status_error(response, response.content, model)
            try:
                return json.loads(response.content)
            except ValueError as exc:
                raise unexpected_response(response, response.content[:200]) from exc
        except ContinuumError as exc:
            self.scrub(exc)
            raise

    # ------------------------------------------------------------- API

    def stream_chat(self, body: dict[str, Any], *, streamed: bool = True) -> Stream:
        """POST {base}/chat/completions as a stream (forces stream and include_usage).

        ``streamed=False`` sends the same request unstreamed (the answer arrives as one delta):
        how a round learns why a server sent an empty stream.
        """
        return Stream(self, "/chat/completions", stream_payload(body, streamed))

    def stream_completion(self, body: dict[str, Any], *, streamed: bool = True) -> Stream:
        """POST {base}/completions as a stream (forces stream and include_usage); see stream_chat."""
        return Stream(self, "/completions", stream_payload(body, streamed))

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST {base}/chat/completions without streaming; the response object."""
        payload = dict(body)
        payload["stream"] = False
        payload.pop("stream_options", None)
        # a non-streamed answer arrives all at once: allow the whole round for it
        result = self._request_json("POST", "/chat/completions", payload, read=self.timeouts.round)
        if isinstance(result, dict) and result.get("error"):
            raise self.scrub(self.body_error(result, self.base_url, body.get("model"), None))
        return result if isinstance(result, dict) else {"data": result}

    def list_models(self, with_meta: bool = True) -> list[ModelInfo]:
        """The server's models, with context length, output cap and prices when it says them."""
        result: Any = None
        if with_meta:
            try:
                result = self._request_json("GET", "/models?filter=with_meta")
            except APIStatusError as exc:
                if exc.status in (401, 402, 403) or exc.status >= 500:
                    raise
        if result is None:
            result = self._request_json("GET", "/models")
        return parse_models(result)


# ------------------------------------------------------------------ model list


def stream_payload(body: dict[str, Any], streamed: bool) -> dict[str, Any]:
    """``body`` as the client sends it: ``stream`` set, and usage asked for when streamed."""
    payload = dict(body)
    payload["stream"] = streamed
    if streamed:
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    else:
        payload.pop("stream_options", None)
    return payload


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _positive_int(*values: Any) -> int | None:
    for value in values:
        number = _number(value)
        if number is not None and number > 0:
            return int(number)
    return None


def _prices(entry: dict[str, Any], meta: dict[str, Any]) -> Prices | None:
    pricing = meta.get("pricing")
    if isinstance(pricing, dict):  # DeepInfra: USD per 1M tokens
        inp, out = _number(pricing.get("input_tokens")), _number(pricing.get("output_tokens"))
        if inp is not None or out is not None:
            return Prices(inp or 0.0, out or 0.0, _number(pricing.get("cache_read_tokens")))
    pricing = entry.get("pricing")
    if isinstance(pricing, dict):  # OpenRouter: USD per token, as strings
        inp, out = _number(pricing.get("prompt")), _number(pricing.get("completion"))
        if inp is not None or out is not None:
            cached = _number(pricing.get("input_cache_read"))

            def per_m(x: float | None) -> float:
                return round((x or 0.0) * 1_000_000, 6)

            return Prices(per_m(inp), per_m(out), per_m(cached) if cached is not None else None)
    return None


def parse_models(result: Any) -> list[ModelInfo]:
    """ModelInfo for each entry of an OpenAI-style model list (DeepInfra/OpenRouter/vLLM fields)."""
    entries = result.get("data") if isinstance(result, dict) else result
    if not isinstance(entries, list):
        entries = result.get("models") if isinstance(result, dict) else None
    models = []
    for entry in entries or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        meta = entry.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        top = entry.get("top_provider")
        top = top if isinstance(top, dict) else {}
        models.append(
            ModelInfo(
                id=str(entry["id"]),
                context_length=_positive_int(
                    meta.get("context_length"),
                    entry.get("context_length"),
                    entry.get("context_window"),
                    entry.get("max_model_len"),
                    top.get("context_length"),
                ),
                max_output=_positive_int(
                    meta.get("max_tokens"), top.get("max_completion_tokens"), entry.get("max_output_tokens")
                ),
                prices=_prices(entry, meta),
                owned_by=str(entry["owned_by"]) if entry.get("owned_by") else None,
            )
        )
    return models
