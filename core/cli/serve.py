"""``serve``: Continuum as an OpenAI-compatible endpoint (:mod:`core.serve`), with ``run``'s provider options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from core.cli.common import (
    EXIT_OK,
    add_target_arguments,
    add_timeout_arguments,
    number,
    open_target,
    timeouts_from_args,
)
from core.cli.run import _template, add_limit_arguments
from core.serve import TOKEN_ENV, Defaults, ServeConfig, serve_forever

__all__ = ["add_serve_parser", "cmd_serve"]


def add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve an OpenAI-compatible endpoint that continues past the upstream's output cap",
        description="Any OpenAI client can point here: a request's max_tokens is the budget of the whole "
        f"answer, continued round after round upstream. Clients must send {TOKEN_ENV} as their API key "
        "when it is set (it must be when listening beyond loopback).",
    )
    add_target_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8400, help="port to listen on (default 8400)")
    add_limit_arguments(serve, defaults=False)
    serve.add_argument(
        "--template", help="completions strategy: llama3, chatml, deepseek, mistral or a .jinja file"
    )
    serve.add_argument(
        "--concurrency",
        type=number("concurrency"),
        default=64,
        help="answers at once; more get 429 with Retry-After (default 64)",
    )
    serve.add_argument("--no-save", action="store_true", help="do not record the runs in the history")
    add_timeout_arguments(serve)


def cmd_serve(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    with open_target(
        args.provider,
        base_url=args.base_url,
        model=args.model,
        api_key_env=args.api_key_env,
        demo_rate=args.demo_rate,
    ) as target:
        defaults = Defaults(
            provider=target.provider,
            base_url=target.base_url,
            model=target.model,
            api_key_env=args.api_key_env,
            round_tokens=args.max_tokens,
            max_rounds=args.max_rounds,
            target_tokens=args.target_tokens,
            cost_limit=args.cost_limit,
            context_window=args.context_window,
            strategy=args.strategy,
            template=_template(args.template),
        )
        config = ServeConfig(
            defaults,
            api_key=target.api_key,
            token=token,
            concurrency=args.concurrency,
            timeouts=timeouts_from_args(args),
            save=not args.no_save,
        )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        line = (
            f"Continuum serving {target.provider.label} ({target.base_url}) on http://{shown}:{args.port}/v1"
        )
        if token:
            line += f"; clients send {TOKEN_ENV} as their API key"
        serve_forever(config, args.host, args.port, announce=lambda: print(line, file=sys.stderr, flush=True))
    return EXIT_OK
