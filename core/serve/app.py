"""The Starlette app: routes, the bearer token, the concurrency limit, the upstream's model list.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /health`` (no token). Every error, ours or the upstream's, is an
OpenAI error object (``{"error": {"message", "type", "param", "code"}}``) with its status.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.continuation.rounds import RetryPolicy
from core.serve.answer import RunAnswer
from core.serve.body import Ask, BadRequest, Defaults, parse_chat, parse_text
from core.serve.bridge import ServeRun
from core.serve.shapes import Shapes, error_body, status_for
from core.services.store import ReadOnlyHistoryError, Store
from core.wire.client import Client, ModelInfo, Timeouts
from core.wire.errors import ContinuumError

log = logging.getLogger(__name__)

__all__ = ["ServeConfig", "create_app"]

MODELS_TTL_S = 300.0


@dataclass
class ServeConfig:
    """How ``python -m core serve`` runs: the upstream (``defaults``) and the key it uses, the
    clients' bearer token, how many answers at once, and whether runs are saved."""

    defaults: Defaults
    api_key: str | None = None
    token: str | None = None  # CONTINUUM_SERVE_TOKEN: required from clients when set
    concurrency: int = 64
    timeouts: Timeouts | None = None
    keepalive_s: float = 10.0
    save: bool = True
    history: str | Path | None = None  # the history's file (None: CONTINUUM_DB, else the default)
    retry_after_s: int = 1  # the Retry-After of a 429 past the concurrency limit
    retry: RetryPolicy | None = None  # the engine's waits and limits for upstream retries


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, kind=kind, param=param, code=code), status, headers=headers)


class Models:
    """The upstream's model list, fetched at most every ``MODELS_TTL_S`` (in a thread: the client
    blocks). A list that cannot be read is not asked for again within ``MODELS_TTL_S`` either:
    requests then go on with the preset's limits."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._models: list[ModelInfo] = []
        self._at = -MODELS_TTL_S
        self._failed_at = -MODELS_TTL_S
        self._lock = threading.Lock()

    def fetch(self) -> list[ModelInfo]:
        with self._lock:
            if time.monotonic() - self._at > MODELS_TTL_S:
                try:
                    self._models = self._client.list_models(with_meta=True)
                except ContinuumError:
                    self._failed_at = time.monotonic()
                    raise
                self._at = time.monotonic()
            return self._models

    async def get(self) -> list[ModelInfo]:
        return await asyncio.to_thread(self.fetch)

    async def info(self, model: Any) -> ModelInfo | None:
        """The list's entry for ``model`` (None when unknown or when the list cannot be read)."""
        now = time.monotonic()
        if now - self._at <= MODELS_TTL_S:
            models = self._models
        elif now - self._failed_at <= MODELS_TTL_S:
            return None
        else:
            try:
                models = await self.get()
            except ContinuumError as exc:
                log.warning("could not read the upstream's model list: %s", exc.message)
                return None
        return next((m for m in models if m.id == model), None)


class Limiter:
    """At most ``limit`` answers at once (the event loop's thread only: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


class Service:
    """What the routes share: the upstream client, the history, the limiter, the model list."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        d = config.defaults
        self.client = Client(
            d.base_url, config.api_key, timeouts=config.timeouts, key_hint=d.provider.key_hint()
        )
        self.models = Models(self.client)
        self.limiter = Limiter(config.concurrency)
        self.store: Store | None = self._open_store(config.history) if config.save else None
        self.runs: set[ServeRun] = set()

    @staticmethod
    def _open_store(path: str | Path | None) -> Store | None:
        store = None
        try:
            store = Store(path)
            store.check_writable()
            store.mark_interrupted()
        except ReadOnlyHistoryError as exc:
            log.warning("runs are not saved: %s", exc)
            if store is not None:
                store.close()
            return None
        return store

    def close(self) -> None:
        for run in list(self.runs):
            run.stop()
        for run in list(self.runs):
            run.join(5.0)
        self.client.close()
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------ access

    def refused(self, request: Request) -> Response | None:
        """A 401 unless the request carries the bearer token (when one is set)."""
        token = self.config.token
        if not token:
            return None
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return None
        return error_response(
            401,
            "Missing or wrong bearer token: send 'Authorization: Bearer <CONTINUUM_SERVE_TOKEN>' "
            "(the API key option of your client).",
            code="invalid_api_key",
        )

    # ------------------------------------------------------------ routes

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "continuum": "serve",
                "active": self.limiter.active,
                "limit": self.limiter.limit,
                "token": bool(self.config.token),
            }
        )

    async def list_models(self, request: Request) -> Response:
        refused = self.refused(request)
        if refused:
            return refused
        try:
            models = await self.models.get()
        except ContinuumError as exc:
            info = exc.to_info()
            return error_response(status_for(info), info.message, kind="upstream_error", code=info.kind)
        return JSONResponse({"object": "list", "data": [model_entry(m) for m in models]})

    async def one_model(self, request: Request) -> Response:
        refused = self.refused(request)
        if refused:
            return refused
        name = request.path_params["model"]
        try:
            models = await self.models.get()
        except ContinuumError as exc:
            info = exc.to_info()
            return error_response(status_for(info), info.message, kind="upstream_error", code=info.kind)
        found = next((m for m in models if m.id == name), None)
        if found is None:
            return error_response(
                404, f"The model '{name}' does not exist upstream", param="model", code="model_not_found"
            )
        return JSONResponse(model_entry(found))

    async def chat(self, request: Request) -> Response | RunAnswer:
        return await self._answer(request, "chat")

    async def text(self, request: Request) -> Response | RunAnswer:
        return await self._answer(request, "text")

    async def _answer(self, request: Request, kind: str) -> Response | RunAnswer:
        refused = self.refused(request)
        if refused:
            return refused
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "The request body is not valid JSON.")
        model = body.get("model") if isinstance(body, dict) else None
        info = await self.models.info(model or self.config.defaults.model)
        try:
            ask = (parse_chat if kind == "chat" else parse_text)(body, self.config.defaults, info)
        except BadRequest as exc:
            return error_response(exc.status, exc.message, param=exc.param, code=exc.code)
        if not self.limiter.acquire():
            return error_response(
                429,
                f"Continuum is answering {self.limiter.limit} requests already (its concurrency limit); "
                "retry after a moment.",
                kind="rate_limit_error",
                code="concurrency_limit",
                headers={"Retry-After": str(self.config.retry_after_s)},
            )
        return self._run(ask)

    def _run(self, ask: Ask) -> RunAnswer:
        run = ServeRun(
            ask.spec,
            client=self.client,
            api_key=self.config.api_key,
            store=self.store,
            loop=asyncio.get_running_loop(),
            retry=self.config.retry,
            opening=ask.opening,
            checked=ask.checked,
        )
        self.runs.add(run)

        def release() -> None:
            self.limiter.release()
            self.runs.discard(run)

        prefix = "chatcmpl-" if ask.kind == "chat" else "cmpl-"
        return RunAnswer(
            run,
            Shapes(prefix + run.run_id, ask.spec.model, ask.kind),
            stream=ask.stream,
            include_usage=ask.include_usage,
            keepalive_s=self.config.keepalive_s,
            release=release,
            opening=ask.opening,
        )


def model_entry(m: ModelInfo) -> dict[str, Any]:
    """One model as OpenAI lists it, with what Continuum knows of its limits."""
    entry: dict[str, Any] = {
        "id": m.id,
        "object": "model",
        "created": 0,
        "owned_by": m.owned_by or "upstream",
    }
    if m.context_length:
        entry["context_length"] = m.context_length
    if m.max_output:
        entry["max_output_tokens"] = m.max_output
    return entry


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return error_response(
        status, f"{request.method} {request.url.path}: {detail}", code="not_found" if status == 404 else None
    )


def create_app(config: ServeConfig) -> Starlette:
    """The endpoint as an ASGI app (``uvicorn`` serves it: :mod:`core.serve.server`)."""
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await service.models.get()  # warm: the first request does not wait for the list
        except ContinuumError as exc:
            log.warning("could not read the upstream's model list: %s", exc.message)
        yield
        await asyncio.to_thread(service.close)

    routes = [
        Route("/v1/chat/completions", service.chat, methods=["POST"]),
        Route("/v1/completions", service.text, methods=["POST"]),
        Route("/v1/models", service.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", service.one_model, methods=["GET"]),
        Route("/health", service.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.service = service
    return app
