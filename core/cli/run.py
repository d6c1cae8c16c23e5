"""The command line: ``python -m core run|probe|models|demo``.

Exit codes: 0 when a run ended normally (finished or a limit), 1 on error,
2 on bad usage. Progress goes to stderr; the answer to ``--output`` or stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from core.errors import ConfigError, ContinuumError
from core.keys import resolve_api_key
from core.providers import DEFAULT_PROVIDER, PROVIDERS, Provider, get_provider
from core.types import STRATEGIES, Delta, Event, Notice, Retrying, RoundFinished, RoundStarted, RunFinished

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
NORMAL_STOPS = frozenset({"finished", "max_rounds", "target_reached", "context_exhausted", "cost_limit"})


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {value}")
    return value


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        default=DEFAULT_PROVIDER,
        choices=sorted(PROVIDERS),
        help=f"provider preset (default: {DEFAULT_PROVIDER}; 'demo' is the offline demo model)",
    )
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: the provider's)")
    parser.add_argument("--model", help="model id (default: the provider's default model)")
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the key (default: the provider's); never pass the key itself",
    )
    parser.add_argument(
        "--demo-rate",
        type=float,
        default=0.0,
        help="with --provider demo: tokens per second of the in-process demo model (0 = unthrottled)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Continuum: long answers from LLM APIs by response continuation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a prompt to the end, continuing round after round")
    _add_target(run)
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the prompt text")
    prompt.add_argument("--prompt-file", type=Path, help="read the prompt from a file ('-' for stdin)")
    run.add_argument("--system", help="an optional system prompt")
    run.add_argument("--max-tokens", type=_positive_int, default=4096, help="max tokens per round")
    run.add_argument("--max-rounds", type=_positive_int, default=20, help="stop after this many rounds")
    run.add_argument("--target-tokens", type=_positive_int, help="stop once the answer has this many tokens")
    run.add_argument("--context-window", type=_positive_int, help="the model's context window in tokens")
    run.add_argument("--strategy", choices=STRATEGIES, help="continuation strategy (default: the provider's)")
    run.add_argument(
        "--template", help="completions strategy: llama3, chatml, deepseek, mistral or a .jinja file"
    )
    run.add_argument("--temperature", type=_temperature, help="sampling temperature (0-2)")
    run.add_argument("--seed", type=int, help="sampling seed, for servers that support it")
    run.add_argument("--cost-limit", type=float, help="stop before the estimated cost passes this (USD)")
    run.add_argument("--output", type=Path, help="write the assembled answer here (default: stdout)")
    run.add_argument("--transcript", type=Path, help="write the JSON transcript here")
    run.add_argument("--title", help="a short name for the run")
    run.add_argument("--quiet", action="store_true", help="no progress display")

    probe = sub.add_parser("probe", help="does this server continue an assistant prefill?")
    _add_target(probe)
    probe.add_argument("--strategy", choices=STRATEGIES, default="prefill")

    models = sub.add_parser("models", help="list the server's models with context length and prices")
    _add_target(models)

    demo = sub.add_parser("demo", help="serve the offline demo model (OpenAI-compatible)", add_help=False)
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    return parser


# ------------------------------------------------------------------ targets


@dataclass
class Target:
    provider: Provider
    base_url: str
    model: str
    api_key: str | None


@contextlib.contextmanager
def open_target(args: argparse.Namespace) -> Iterator[Target]:
    """Resolve provider, base URL, model and key; start the demo model when chosen."""
    provider = get_provider(args.provider)
    model = args.model or provider.default_model
    if not model:
        raise UsageError(f"--model is required for the {provider.label} provider")
    api_key = resolve_api_key(provider.id, api_key_env=args.api_key_env)
    if provider.needs_key and not api_key:
        raise ConfigError(f"No API key found for {provider.label}.", hint=provider.key_hint())
    if provider.is_demo and not args.base_url:
        from core.demo import start_demo_server

        with start_demo_server(rate=args.demo_rate) as server:
            yield Target(provider, server.base_url, model, api_key)
        return
    base_url = args.base_url or provider.base_url
    if not base_url:
        raise UsageError(f"--base-url is required for the {provider.label} provider")
    yield Target(provider, base_url, model, api_key)


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        text = str(args.prompt)
    elif str(args.prompt_file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = args.prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the prompt file {args.prompt_file}: {exc}") from None
    if not text.strip():
        raise UsageError("the prompt is empty")
    return text


# ------------------------------------------------------------------ run


class Progress:
    """One status line on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, window: int | None, enabled: bool = True) -> None:
        self.stream = stream
        self.window = window
        self.enabled = enabled
        self.tty = stream.isatty()
        self.round = 0
        self.round_chars = 0
        self.tokens = 0
        self.context = 0
        self.last_draw = 0.0

    def handle(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, RoundStarted):
            self.round, self.round_chars = event.index, 0
            self.draw(force=True)
        elif isinstance(event, Delta):
            self.round_chars += len(event.text)
            self.draw()
        elif isinstance(event, RoundFinished):
            r = event.round
            self.tokens += r.completion_tokens
            self.context = r.prompt_tokens + r.completion_tokens
            mark = "~" if r.tokens_estimated else ""
            self.line(
                f"round {r.index}: {mark}{r.completion_tokens:,} tokens, "
                f"finish={r.finish_reason or 'none'}, {r.duration_s:.1f} s"
                + (f", error: {r.error}" if r.error else "")
            )
        elif isinstance(event, Retrying):
            self.line(f"retrying in {event.wait:.1f} s ({event.reason})")
        elif isinstance(event, Notice):
            self.line(f"note: {event.message}")

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not force and now - self.last_draw < 0.1):
            return
        self.last_draw = now
        window = f" · context {self.context:,}/{self.window:,}" if self.window else ""
        self.stream.write(
            f"\r\x1b[Kround {self.round} · {self.tokens:,} tokens so far · "
            f"{self.round_chars:,} chars this round{window}"
        )
        self.stream.flush()

    def line(self, text: str) -> None:
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()


def _spec_from_args(args: argparse.Namespace, target: Target, prompt: str) -> Any:
    from core.types import RunSpec

    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    provider = target.provider
    template = args.template
    if template and template.endswith((".jinja", ".j2")):
        try:
            template = Path(template).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the template {args.template}: {exc}") from None
    return RunSpec(
        messages=messages,
        provider=provider.id,
        base_url=target.base_url,
        model=target.model,
        max_tokens=args.max_tokens,
        max_rounds=args.max_rounds,
        target_tokens=args.target_tokens,
        cost_limit=args.cost_limit,
        context_window=args.context_window or provider.context_window,
        output_cap=provider.output_cap,
        strategy=args.strategy or provider.strategy,
        template=template,
        temperature=args.temperature,
        seed=args.seed,
        prices=provider.prices,
        api_key_env=args.api_key_env,
        title=args.title or "",
    )


def _apply_model_meta(spec: Any, client: Any, args: argparse.Namespace, progress: Progress) -> None:
    """Fill context window, output cap and prices from the server's model list, where it offers them."""
    if not (target_meta := spec.provider in PROVIDERS and PROVIDERS[spec.provider].model_meta):
        return
    try:
        models = client.list_models(with_meta=target_meta)
    except ContinuumError as exc:
        progress.line(f"note: could not read the model list ({exc.message}); using presets")
        return
    info = next((m for m in models if m.id == spec.model), None)
    if info is None:
        return
    if info.context_length and not args.context_window:
        spec.context_window = info.context_length
    if info.max_output:
        spec.output_cap = info.max_output
    if info.prices:
        spec.prices = info.prices


def cmd_run(args: argparse.Namespace) -> int:
    from core.client import Client
    from core.engine import run as run_engine
    from core.types import CancelToken

    prompt = _read_prompt(args)
    with open_target(args) as target:
        spec = _spec_from_args(args, target, prompt)
        client = Client(target.base_url, target.api_key, key_hint=target.provider.key_hint())
        progress = Progress(sys.stderr, spec.context_window, enabled=not args.quiet)
        cancel = CancelToken()
        previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
        try:
            _apply_model_meta(spec, client, args, progress)
            progress.window = spec.context_window
            finished: RunFinished | None = None
            for event in run_engine(spec, api_key=target.api_key, cancel=cancel, client=client):
                progress.handle(event)
                if isinstance(event, RunFinished):
                    finished = event
        finally:
            signal.signal(signal.SIGINT, previous)
            client.close()
    assert finished is not None
    result = finished.result
    _write_outputs(args, result)
    totals = result.totals()
    progress.line(
        f"stopped: {finished.stop_reason} after {totals['rounds']} rounds, "
        f"{totals['completion_tokens']:,} tokens out, {totals['prompt_tokens_billed']:,} tokens in (billed)"
    )
    if finished.error:
        print(f"error: {finished.error.message}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if finished.stop_reason in NORMAL_STOPS else EXIT_ERROR


def _write_outputs(args: argparse.Namespace, result: Any) -> None:
    if args.output:
        args.output.write_text(result.text, encoding="utf-8")
    else:
        sys.stdout.write(result.text)
        if result.text and not result.text.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
    if args.transcript:
        args.transcript.write_text(
            json.dumps(result.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
        )


# ------------------------------------------------------------------ probe, models, demo


def cmd_probe(args: argparse.Namespace) -> int:
    from core.probe import probe

    with open_target(args) as target:
        result = probe(target.base_url, target.model, api_key=target.api_key, strategy=args.strategy)
    print(f"verdict: {result.verdict}")
    print(f"sample: {result.sample!r}")
    print(f"advice: {result.advice}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from core.client import Client

    with open_target(args) as target, Client(target.base_url, target.api_key) as client:
        models = client.list_models()
    print(f"{'model':<50} {'context':>9} {'max out':>9} {'$/M in':>8} {'$/M out':>8}")
    for m in models:
        prices = m.prices
        print(
            f"{m.id:<50} {m.context_length or '-':>9} {m.max_output or '-':>9} "
            f"{prices.input_per_mtok if prices else '-':>8} {prices.output_per_mtok if prices else '-':>8}"
        )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo.server import main as demo_main

    return int(demo_main(list(args.demo_args)) or 0)


COMMANDS = {"run": cmd_run, "probe": cmd_probe, "models": cmd_models, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContinuumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return EXIT_OK
