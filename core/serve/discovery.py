"""Is an endpoint running, and how does a client use it: what the app's Settings page shows.

The app and ``python -m core serve`` are separate processes; the page asks ``GET /health`` at
``CONTINUUM_SERVE_URL`` (default ``http://127.0.0.1:8400/v1``, the command's default address)
with a short timeout. Only an answer in the endpoint's own shape counts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_SERVE_URL", "SERVE_URL_ENV", "Endpoint", "client_example", "find_endpoint", "serve_url"]

SERVE_URL_ENV = "CONTINUUM_SERVE_URL"
DEFAULT_SERVE_URL = "http://127.0.0.1:8400/v1"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    active: int  # answers in progress
    limit: int  # the concurrency limit
    token: bool  # clients must send CONTINUUM_SERVE_TOKEN


def serve_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(SERVE_URL_ENV) or DEFAULT_SERVE_URL).strip().rstrip("/")


def find_endpoint(base_url: str | None = None, timeout: float = 0.3) -> Endpoint | None:
    """The endpoint answering at ``base_url`` (default :func:`serve_url`), or None."""
    base = (base_url or serve_url()).rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    try:
        reply = httpx.get(root + "/health", timeout=timeout, follow_redirects=False)
        data = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("continuum") != "serve":
        return None
    return Endpoint(base, int(data.get("active") or 0), int(data.get("limit") or 0), bool(data.get("token")))


def client_example(base_url: str, model: str, *, token: bool = False) -> str:
    """A copyable ``openai`` example for the endpoint at ``base_url``."""
    key = 'os.environ["CONTINUUM_SERVE_TOKEN"]' if token else '"unused"'
    return (
        ("import os\n" if token else "")
        + f"""from openai import OpenAI

client = OpenAI(base_url="{base_url}", api_key={key})
stream = client.chat.completions.create(
    model="{model}",
    messages=[{{"role": "user", "content": "Write 20000 tokens about lighthouses"}}],
    max_tokens=20000,  # the whole answer's budget, past the output cap
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
"""
    )
