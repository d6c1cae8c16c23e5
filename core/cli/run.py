"""``run``, ``probe`` and ``models``: talk to a server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    NORMAL_STOPS,
    Progress,
    Target,
    UsageError,
    add_target_arguments,
    add_timeout_arguments,
    check_outputs,
    number,
    on_stop_signal,
    open_target,
    temperature,
    timeouts_from_args,
)
from core.continuation.engine import run as run_engine
from core.continuation.probe import VERDICT_HEADLINES, probe_all
from core.continuation.validation import validate_spec
from core.services.providers import PROVIDERS
from core.services.specs import make_spec, with_model
from core.services.store import ReadOnlyHistoryError, Recorder, Store
from core.types import STRATEGIES, CancelToken, RunFinished, RunResult, RunSpec, RunStarted
from core.wire.client import Client
from core.wire.errors import ContinuumError

if TYPE_CHECKING:
    from core.wire.client import Timeouts


def add_run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a prompt to the end, continuing round after round")
    add_target_arguments(run)
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the prompt text")
    prompt.add_argument("--prompt-file", type=Path, help="read the prompt from a file ('-' for stdin)")
    run.add_argument("--system", help="an optional system prompt")
    add_limit_arguments(run, defaults=True)
    run.add_argument(
        "--template", help="completions strategy: llama3, chatml, deepseek, mistral or a .jinja file"
    )
    run.add_argument("--temperature", type=temperature, help="sampling temperature (0-2)")
    run.add_argument("--seed", type=int, help="sampling seed, for servers that support it")
    run.add_argument("--title", help="a short name for the run")
    add_output_arguments(run)
    add_timeout_arguments(run)

    probe = sub.add_parser(
        "probe",
        help="which strategies really continue on this server? (a self-consistency check at temperature 0)",
    )
    add_target_arguments(probe)
    probe.add_argument(
        "--strategy",
        choices=(*STRATEGIES, "all"),
        default="all",
        help="the strategy to probe (default: all, and recommend one)",
    )
    probe.add_argument(
        "--template",
        default=None,
        help="chat template for the completions strategy: llama3, chatml, deepseek, mistral or a Jinja file",
    )
    add_timeout_arguments(probe)

    models = sub.add_parser("models", help="list the server's models with context length and prices")
    add_target_arguments(models)
    add_timeout_arguments(models)


def add_limit_arguments(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument(
        "--max-tokens",
        type=number("max_tokens"),
        default=4096 if defaults else None,
        help="max tokens per round",
    )
    parser.add_argument(
        "--max-rounds",
        type=number("max_rounds"),
        default=20 if defaults else None,
        help="stop after this many rounds",
    )
    parser.add_argument(
        "--target-tokens", type=number("target_tokens"), help="stop once the answer has this many tokens"
    )
    parser.add_argument(
        "--context-window", type=number("context_window"), help="the model's context window in tokens"
    )
    parser.add_argument(
        "--strategy", choices=STRATEGIES, help="continuation strategy (default: the provider's)"
    )
    parser.add_argument(
        "--cost-limit", type=number("cost_limit"), help="stop before the cost passes this (USD)"
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, help="write the assembled answer here (default: stdout)")
    parser.add_argument("--transcript", type=Path, help="write the JSON transcript here")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--no-save", action="store_true", help="do not record the run in the history")


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        text = str(args.prompt)
    elif str(args.prompt_file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = args.prompt_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"the prompt file {args.prompt_file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start:,}); save it as UTF-8"
            ) from None
        except OSError as exc:
            raise UsageError(
                f"cannot read the prompt file {args.prompt_file}: {exc.strerror or exc}"
            ) from None
    if not text.strip():
        raise UsageError("the prompt is empty: write what the model should answer")
    return text


def _template(name: str | None) -> str | None:
    if name and name.endswith((".jinja", ".j2")):
        try:
            return Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the template {name}: {exc}") from None
    return name


def spec_from_args(args: argparse.Namespace, target: Target, prompt: str) -> RunSpec:
    return make_spec(
        target.provider,
        prompt,
        system=args.system,
        model=target.model,
        base_url=target.base_url,
        max_tokens=args.max_tokens,
        max_rounds=args.max_rounds,
        target_tokens=args.target_tokens,
        cost_limit=args.cost_limit,
        context_window=args.context_window,
        strategy=args.strategy,
        template=_template(args.template),
        temperature=args.temperature,
        seed=args.seed,
        api_key_env=args.api_key_env,
        title=args.title or "",
    )


def apply_model_meta(spec: RunSpec, client: Any, progress: Progress, *, keep_window: bool) -> None:
    """Fill context window, output cap and prices from the server's model list where it offers them."""
    provider = PROVIDERS.get(spec.provider)
    if provider is None or not provider.model_meta:
        return
    try:
        models = client.list_models(with_meta=True)
    except ContinuumError as exc:
        progress.line(f"note: could not read the model list ({exc.message}); using presets")
        return
    info = next((m for m in models if m.id == spec.model), None)
    if info is None:
        return
    known = with_model(spec, info, keep_window=keep_window)  # the spec factory's one rule
    spec.context_window, spec.output_cap, spec.prices = known.context_window, known.output_cap, known.prices


def open_history() -> Store | None:
    """The history a run is saved in, checked writable before anything is sent.

    A read-only history is no reason to refuse an answer: the run goes on unsaved
    and says so once (None). Any other problem (not a database, a lock held by
    another process) raises its StoreError: one line and exit 1.
    """
    store = None
    try:
        store = Store()
        store.check_writable()
    except ReadOnlyHistoryError as exc:
        if store is not None:
            store.close()
        print(f"note: this run is not saved: {exc}", file=sys.stderr)
        return None
    except BaseException:
        if store is not None:
            store.close()
        raise
    return store


def execute(
    spec: RunSpec,
    target: Target,
    *,
    quiet: bool,
    save: bool,
    resume: RunResult | None = None,
    keep_window: bool = False,
    timeouts: Timeouts | None = None,
) -> RunFinished:
    """Run the engine with a progress line, recording to the history unless ``save`` is False
    (or the history is read-only, see :func:`open_history`).

    The spec is validated (:func:`core.continuation.validation.validate_spec`) once the model's
    window is known and before the prompt is sent: a ConfigError (exit 2) names
    every problem. The engine gets the proof and does not check it again.
    """
    client = Client(target.base_url, target.api_key, key_hint=target.provider.key_hint(), timeouts=timeouts)
    progress = Progress(sys.stderr, spec.context_window, enabled=not quiet)
    cancel = CancelToken()
    store = recorder = None
    finished: RunFinished | None = None
    try:
        with on_stop_signal(lambda *_: cancel.cancel()):  # Ctrl+C, SIGTERM, SIGHUP: stop as cancelled
            store = open_history() if save else None  # before the first request
            apply_model_meta(spec, client, progress, keep_window=keep_window)
            checked = validate_spec(spec)  # exit 2 before any request, run or output file
            progress.window = spec.context_window
            events = run_engine(
                spec, api_key=target.api_key, cancel=cancel, resume=resume, client=client, checked=checked
            )
            if store is not None:
                store.mark_interrupted()
                recorder = Recorder(store, resume=resume, autoflush=True)
                events = recorder.record(events)
            for event in events:
                progress.handle(event)
                if isinstance(event, RunFinished):
                    finished = event
                elif isinstance(event, RunStarted) and recorder is not None and store is not None:
                    progress.line(f"run {recorder.run_id} (history: {store.path})")
    finally:
        client.close()
        if store is not None:
            store.close()
    if finished is None:
        raise ContinuumError("The run ended without a result.")
    return finished


def report(args: argparse.Namespace, finished: RunFinished) -> int:
    result = finished.result
    parts = result.text_parts()  # written piece by piece: a long answer is never copied whole
    if args.output:
        with args.output.open("w", encoding="utf-8") as out:
            out.writelines(parts)
    else:
        sys.stdout.writelines(parts)
        if not next((part for part in reversed(parts) if part), "\n").endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
    if args.transcript:
        args.transcript.write_text(
            json.dumps(result.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
    totals = result.totals()
    if not args.quiet:
        print(
            f"stopped: {finished.stop_reason} after {totals['rounds']} rounds, "
            f"{totals['completion_tokens']:,} tokens out, {totals['prompt_tokens_billed']:,} tokens in (billed)"
            + (f"; run {result.run_id}" if result.run_id else ""),
            file=sys.stderr,
        )
    if finished.error:
        print(f"error: {finished.error.message}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if finished.stop_reason in NORMAL_STOPS else EXIT_ERROR


def cmd_run(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args)
    check_outputs(("--output", args.output), ("--transcript", args.transcript))
    with open_target(
        args.provider,
        base_url=args.base_url,
        model=args.model,
        api_key_env=args.api_key_env,
        demo_rate=args.demo_rate,
    ) as target:
        spec = spec_from_args(args, target, prompt)
        finished = execute(
            spec,
            target,
            quiet=args.quiet,
            save=not args.no_save,
            keep_window=bool(args.context_window),
            timeouts=timeouts_from_args(args),
        )
    return report(args, finished)


def _timeouts_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, f"{n}_timeout", None) is not None for n in ("connect", "idle", "round"))


def cmd_probe(args: argparse.Namespace) -> int:
    template = _template(args.template)
    strategies = None if args.strategy == "all" else (args.strategy,)
    with open_target(
        args.provider, base_url=args.base_url, model=args.model, api_key_env=args.api_key_env
    ) as target:
        report = probe_all(
            target.base_url,
            target.model,
            api_key=target.api_key,
            strategies=strategies,
            template=template,
            timeouts=timeouts_from_args(args) if _timeouts_given(args) else None,
        )
    for result in report.results:
        print(f"{result.strategy:<12} {result.verdict:<9} {VERDICT_HEADLINES[result.verdict]}")
        print(f"{'':<12} {result.advice}")
        if result.sample:
            print(f"{'':<12} sample: {result.sample[:100]!r}")
    for name, why in report.skipped.items():
        print(f"{name:<12} {'skipped':<9} {why}")
    print(f"recommended: {report.recommended or 'none'}")
    print(f"advice: {report.advice}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    with (
        open_target(
            args.provider,
            base_url=args.base_url,
            model=args.model,
            api_key_env=args.api_key_env,
            need_model=False,
        ) as target,
        Client(
            target.base_url,
            target.api_key,
            key_hint=target.provider.key_hint(),
            timeouts=timeouts_from_args(args),
        ) as client,
    ):
        models = client.list_models()
    print(f"{'model':<50} {'context':>9} {'max out':>9} {'$/M in':>8} {'$/M out':>8}")
    for m in models:
        prices = m.prices
        print(
            f"{m.id:<50} {m.context_length or '-':>9} {m.max_output or '-':>9} "
            f"{prices.input_per_mtok if prices else '-':>8} {prices.output_per_mtok if prices else '-':>8}"
        )
    return EXIT_OK
