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
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from core.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
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
    url_path,
)
from core.cli.run import add_limit_arguments, apply_model_meta, spec_from_args
from core.services.batch import (
    BatchProgress,
    BatchRunner,
    ItemProgress,
    RowError,
    check_items,
    concurrency_cap,
    create_batch,
    export_batch,
    parse_items,
    source_digest,
)
from core.services.batch.specs import settings_from_dict
from core.services.providers import DEFAULT_PROVIDER, get_provider
from core.services.store import Batches, BatchRecord, Store
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
    batch.add_argument("--skip-failed", action="store_true", help="with --resume: do not retry failed items")
    batch.add_argument("--quiet", action="store_true", help="no progress display")
    add_timeout_arguments(batch)


# ---------------------------------------------------------------- progress


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(p: BatchProgress, width: int = 20) -> str:
    filled = round(width * p.fraction)
    bar = "█" * filled + "░" * (width - filled)
    cost = f" · ${p.cost:.4f}" if p.cost is not None else ""
    eta = f" · {_duration(p.eta_s)} left" if p.eta_s is not None else ""
    limited = f" · {p.rate_limits} rate limits" if p.rate_limits else ""
    return (
        f"[{bar}] {p.finished + p.failed}/{p.total} · {p.running} running · {p.failed} failed · "
        f"{p.tokens:,} tokens{cost} · concurrency {p.limit}/{p.max_limit}{limited} · "
        f"{_duration(p.elapsed_s)}{eta}"
    )


class BatchDisplay:
    """Progress on stderr: one redrawn line on a terminal, a line every 10 s otherwise."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream: TextIO = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else 10.0
        self._lock = threading.Lock()
        self._last = 0.0

    def tick(self, p: BatchProgress, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.every):
            return
        self._last = now
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K" + progress_line(p))
            else:
                self.stream.write(progress_line(p) + "\n")
            self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
            self.stream.flush()

    def item_ended(self, item: ItemProgress) -> None:
        if item.status == "failed":
            self.line(f"item {item.id!r} failed: {item.error}")


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
    return _drive(runner, display)


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


def _drive(runner: BatchRunner, display: BatchDisplay) -> BatchProgress:
    """Run with a progress display; the first Ctrl-C (or SIGTERM, SIGHUP) stops the batch, a second one aborts."""
    stopped = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        display.line(
            f"stopping ({name}): items in flight are saved and can be resumed (Ctrl-C again to abort)"
        )
        runner.stop()

    with on_stop_signal(on_stop):
        runner.start()
        while not runner.wait(display.every if display.enabled else 1.0):
            display.tick(runner.progress())
    progress = runner.progress()
    display.tick(progress, force=True)
    if display.tty:
        display.line("")
    return progress


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
    print(
        f"batch {p.batch_id}: {p.finished} finished, {p.failed} failed, {p.stopped + p.queued} not done"
        f" · {p.tokens:,} tokens{cost} · {_duration(p.elapsed_s)}{rows}",
        file=sys.stderr,
    )
    if p.state == "stopped" or p.failed:
        print(f"resume with: python -m core batch {args.input} --resume {p.batch_id}", file=sys.stderr)
    if p.state == "stopped":
        return EXIT_STOPPED
    return EXIT_ERROR if p.failed or rejected else EXIT_OK
