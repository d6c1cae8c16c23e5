"""The endpoint: ``python -m core serve``, Continuum as an OpenAI-compatible server. DESIGN §11.

Any OpenAI client (the ``openai`` package, a chat front end, a gateway) points here instead of
at its provider and gets answers past the upstream's output cap: the request's ``max_tokens``
is the budget of the whole answer, and one stream spans every continuation round without a
visible seam. Each request is a run in the history (source ``api``).

Owns: the request body → a RunSpec through the one spec factory (:mod:`.body`), the OpenAI
shapes of chunks, completions and errors (:mod:`.shapes`), what of an answer may be streamed
before the next round settles its tail (:mod:`.tracker`), the engine in a worker thread per
request (:mod:`.bridge`), one request's ASGI response (:mod:`.answer`), the Starlette app with
the token and the concurrency limit (:mod:`.app`), uvicorn (:mod:`.server`), and whether an
endpoint runs, for the app's Settings page (:mod:`.discovery`).

A front end beside :mod:`core.cli` (which wires the command to it). May import:
:mod:`core.services`, :mod:`core.continuation`, :mod:`core.wire`, :mod:`core.types`,
:mod:`core.bounds`, Starlette and uvicorn. Never the CLI, the demo model or Streamlit.
"""

from __future__ import annotations

from core.serve.app import ServeConfig, create_app
from core.serve.body import Defaults
from core.serve.server import TOKEN_ENV, RunningServe, serve_forever, start_serve

__all__ = [
    "TOKEN_ENV",
    "Defaults",
    "RunningServe",
    "ServeConfig",
    "create_app",
    "serve_forever",
    "start_serve",
]
