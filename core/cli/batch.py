"""``batch``: many prompts from a CSV or JSONL file, answered concurrently, resumable.

    python -m core batch prompts.jsonl --concurrency 32 --out results.jsonl [--resume]

Bad rows are reported on stderr (line and column) and skipped; the good rows
run. Ctrl-C stops the batch (items in flight are kept, resumable); ``--resume``
continues the last batch started from the same file without redoing finished
items. Exit codes: 0 all items finished, 1 some item failed or some row was
rejected, 130 stopped with Ctrl-C (or SIGTERM, SIGHUP), 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

from core.cli.batch_progress import FOLLOWING, BatchDisplay, Following, drive, duration, progress_line
from core.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Target,
    UsageError,
    add_target_arguments,
    add_timeout_arguments,
    check_outputs,
    number,
    open_target,
    temperature,
    timeouts_from_args,
    url_path,
)
from core.cli.run import add_limit_arguments, apply_model_meta, spec_from_args
from core.services.batch import (
    BatchProgress,
    BatchRunner,
    RowError,
    check_items,
    concurrency_cap,
    create_batch,
    export_batch,
    parse_items,
    source_digest,
)
from core.services.batch.specs import settings_dict, settings_from_dict
from core.services.providers import DEFAULT_PROVIDER, get_provider
from core.services.store import Batches, BatchRecord, Store
from core.services.store.claims import Claims
from core.types import RunSpec
from core.wire.client import Client

EXIT_STOPPED = 130
MAX_ROW_ERRORS_SHOWN = 50
LIMIT_FIELDS = ("max_tokens", "max_rounds", "target_tokens", "context_window", "strategy", "cost_limit")

__all__ = ["add_batch_parser", "cmd_batch"]


def add_batch_parser(sub: Any) -> None:
    batch = sub.add_parser(
        "batch",
        help="answer every prompt of a CSV or JSONL file, many at once (resumable)",
        description=(
            "Rows: id, prompt, and optionally system, max_tokens, max_rounds, target_tokens, model, "
            "temperature, strategy (other columns are kept as metadata). Bad rows are reported and skipped."
        ),
    )
    batch.add_argument("input", type=Path, help="the prompts: a .csv or .jsonl file")
    add_target_arguments(batch, provider_default=None)
    add_limit_arguments(batch, defaults=False)
    batch.add_argument("--system", help="system prompt for the items without one")
    batch.add_argument(
        "--template", help="completions strategy: llama3, chatml, deepseek, mistral or a .jinja file"
    )
    batch.add_argument("--temperature", type=temperature, help="sampling temperature (0-2)")
    batch.add_argument("--seed", type=int, help="sampling seed, for servers that support it")
    batch.add_argument("--title", help="a name for the batch (default: the file name)")
    batch.add_argument(
        "--concurrency",
        type=number("concurrency"),
        help="requests in flight at most (default 8, or the batch's; capped at the provider's limit, "
        "DeepInfra 200); rate limits lower it on the fly",
    )
    batch.add_argument("--out", type=Path, help="results as JSONL, one transcript per item (default: stdout)")
    batch.add_argument("--summary", type=Path, help="also write a CSV summary (one row per item)")
    batch.add_argument("--zip", type=Path, help="also write a ZIP of Markdown files (one per item)")
    batch.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="BATCH_ID",
        help="continue the last batch started from this file (or BATCH_ID); finished items are not redone",
    )
    batch.add_argument(
        "--workers",
        action="store_true",
        help="hand the batch to batch workers (python -m core batch-worker, on any machine sharing the "
        "history) instead of running it here, and show their progress until it is done",
    )
    batch.add_argument("--skip-failed", action="store_true", help="with --resume: do not retry failed items")
    batch.add_argument("--quiet", action="store_true", help="no progress display")
    add_timeout_arguments(batch)


def report_row_errors(name: str, errors: list[RowError], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    for error in errors[:MAX_ROW_ERRORS_SHOWN]:
        stream.write(f"{name}: {error} (row skipped)\n")
    if len(errors) > MAX_ROW_ERRORS_SHOWN:
        stream.write(f"{name}: … and {len(errors) - MAX_ROW_ERRORS_SHOWN} more bad rows\n")


# ---------------------------------------------------------------- settings


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    values = vars(args).copy()
    values["max_tokens"] = args.max_tokens or 4096
    values["max_rounds"] = args.max_rounds or 20
    return argparse.Namespace(**values)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Limits given on the command line (a resume may raise them)."""
    return {name: getattr(args, name) for name in LIMIT_FIELDS if getattr(args, name, None) is not None}


def _find_batch(batches: Batches, args: argparse.Namespace, data: bytes) -> BatchRecord:
    source = str(args.input.resolve())
    if args.resume:
        record = batches.get(args.resume)
    else:
        found = batches.latest_for_source(source)
        if found is None:
            raise UsageError(f"no batch was started from {args.input}; run it without --resume first")
        record = found
    if record.source_sha256 and record.source == source and record.source_sha256 != source_digest(data):
        raise UsageError(
            f"{args.input} changed since batch {record.id} was started; "
            "run it without --resume to start a new batch"
        )
    return record


# ---------------------------------------------------------------- command


def cmd_batch(args: argparse.Namespace) -> int:
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.input}: {exc.strerror or exc}") from None
    check_outputs(("--out", args.out), ("--summary", args.summary), ("--zip", args.zip))
    display = BatchDisplay(sys.stderr, enabled=not args.quiet)
    with Store() as store:
        store.check_writable()  # a batch lives in the history: refuse before anything is sent
        if args.resume is not None:
            batch_id, progress, rejected = _resume_batch(args, store, data, display)
        else:
            batch_id, progress, rejected = _new_batch(args, store, data, display)
        _write_outputs(args, store, batch_id)
    return _finish(args, progress, rejected, display)


def _resume_batch(
    args: argparse.Namespace, store: Store, data: bytes, display: BatchDisplay
) -> tuple[str, BatchProgress, int]:
    """``--resume``: the batch's stored settings, with what the command line changes; no row is rejected."""
    record = _find_batch(Batches(store), args, data)
    settings = settings_from_dict(record.settings)
    provider_id = args.provider or settings.provider
    demo = get_provider(provider_id).is_demo
    with open_target(
        provider_id,
        base_url=args.base_url or (None if demo else settings.base_url),
        model=args.model or settings.model,
        api_key_env=args.api_key_env or settings.api_key_env,
        demo_rate=args.demo_rate,
        demo_path=url_path(settings.base_url) if demo else None,
    ) as target:
        settings = dataclasses.replace(
            settings,
            provider=target.provider.id,
            base_url=target.base_url,
            model=target.model,
            **_overrides(args),
        )
        display.line(f"resuming batch {record.id} (history: {store.path})")
        return record.id, _run(args, store, record.id, settings, target, display), 0


def _new_batch(
    args: argparse.Namespace, store: Store, data: bytes, display: BatchDisplay
) -> tuple[str, BatchProgress, int]:
    """A new batch from the file's rows; the bad ones (and those these settings cannot run) are counted."""
    parsed = parse_items(data, args.input.name)
    report_row_errors(args.input.name, parsed.errors)
    if not parsed.items:
        raise UsageError(f"{args.input} has no usable rows")
    with open_target(
        args.provider or DEFAULT_PROVIDER,
        base_url=args.base_url,
        model=args.model,
        api_key_env=args.api_key_env,
        demo_rate=args.demo_rate,
    ) as target:
        settings = _new_settings(args, target, display)
        items, problems = check_items(parsed.items, settings)
        report_row_errors(args.input.name, problems)
        if not items:
            raise UsageError(f"{args.input} has no row that can run with these settings")
        batch_id = create_batch(
            store,
            items,
            settings,
            title=args.title or args.input.name,
            source=str(args.input.resolve()),
            source_data=data,
            concurrency=args.concurrency,
        )
        display.line(f"batch {batch_id}: {len(items)} items (history: {store.path})")
        progress = _run(args, store, batch_id, settings, target, display)
    return batch_id, progress, len(parsed.errors) + len(problems)


def _run(
    args: argparse.Namespace,
    store: Store,
    batch_id: str,
    settings: RunSpec,
    target: Target,
    display: BatchDisplay,
) -> BatchProgress:
    claims = Claims(store)
    if args.workers:  # the workers run it: store the settings, hand it over, follow them
        Batches(store).update(batch_id, settings=settings_dict(settings))
        claims.hand_over(batch_id)
        display.line(f"batch {batch_id} handed to batch workers: python -m core batch-worker (any machine)")
        return drive(Following(store, batch_id), display, progress_line, FOLLOWING)
    if claims.for_workers(batch_id):
        claims.hand_over(batch_id, workers=False)
        display.line(f"batch {batch_id} taken back from the batch workers: it runs here")
    cap = concurrency_cap(settings.provider)
    if args.concurrency and args.concurrency > cap:
        display.line(f"note: concurrency capped at {cap} for {target.provider.label}")
    runner = BatchRunner(
        store,
        batch_id,
        api_key=target.api_key,
        settings=settings,
        concurrency=args.concurrency,
        retry_failed=not args.skip_failed,
        timeouts=timeouts_from_args(args),
        on_item=display.item_ended,
    )
    return drive(runner, display, progress_line)


def _new_settings(args: argparse.Namespace, target: Target, display: BatchDisplay) -> RunSpec:
    settings = spec_from_args(_with_defaults(args), target, "")
    settings.messages = [{"role": "system", "content": args.system}] if args.system else []
    with Client(
        target.base_url,
        target.api_key,
        key_hint=target.provider.key_hint(),
        timeouts=timeouts_from_args(args),
    ) as client:
        apply_model_meta(settings, client, display, keep_window=bool(args.context_window))  # type: ignore[arg-type]
    return settings


def _write_outputs(args: argparse.Namespace, store: Store, batch_id: str) -> None:
    jsonl = export_batch(store, batch_id, "jsonl")
    if args.out:
        args.out.write_bytes(jsonl)
    else:
        sys.stdout.buffer.write(jsonl)
        sys.stdout.flush()
    if args.summary:
        args.summary.write_bytes(export_batch(store, batch_id, "csv"))
    if args.zip:
        args.zip.write_bytes(export_batch(store, batch_id, "zip"))


def _finish(args: argparse.Namespace, p: BatchProgress, rejected: int, display: BatchDisplay) -> int:
    cost = f", ${p.cost:.4f}" if p.cost is not None else ""
    rows = f"; {rejected} bad rows skipped" if rejected else ""
    if p.for_workers and p.state == "running":  # stopped following: the workers go on
        print(f"batch {p.batch_id}: {p.ended}/{p.total} done so far by the workers{rows}", file=sys.stderr)
        print(
            f"follow it again with: python -m core batch {args.input} --resume {p.batch_id} --workers",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    print(
        f"batch {p.batch_id}: {p.finished} finished, {p.failed} failed, {p.stopped + p.queued} not done"
        f" · {p.tokens:,} tokens{cost} · {duration(p.elapsed_s)}{rows}",
        file=sys.stderr,
    )
    if p.state == "stopped" or p.failed:
        print(f"resume with: python -m core batch {args.input} --resume {p.batch_id}", file=sys.stderr)
    if p.state == "stopped":
        return EXIT_STOPPED
    return EXIT_ERROR if p.failed or rejected else EXIT_OK
