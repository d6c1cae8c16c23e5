"""``batch-worker``: run items of the batches handed to workers, on this machine, with its own key.

    python -m core batch-worker --provider deepinfra --api-key-env TEAM_B_KEY --concurrency 64
    python -m core batch-worker --provider demo --base-url http://10.0.0.5:8765/v1 --until-done

Any number of workers, on any machines sharing the history (``CONTINUUM_DB``: a PostgreSQL URL;
a SQLite file serves workers on one machine), take items of the batches handed to them
(``python -m core batch FILE --workers``, or the Batch page) one at a time, run them with this
worker's provider, base URL, key and limits, and write the answers to the history
(:mod:`core.services.batch.worker`). Without ``--provider`` each batch runs with its own stored
provider and base URL and the provider's usual key variable (a demo batch: a demo model started
here). Ctrl-C (SIGTERM, SIGHUP) stops it: items in flight are saved and taken by another worker,
which resumes them. Exit codes: 0 stopped or done, 1 the worker could not run a batch (a missing
key…) or the history failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import threading
from collections.abc import Iterator
from typing import Any

from core.cli.batch_progress import BatchDisplay, drive, duration
from core.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    add_target_arguments,
    add_timeout_arguments,
    number,
    open_target,
    timeouts_from_args,
)
from core.demo import start_demo_server
from core.services.batch import DEFAULT_CONCURRENCY
from core.services.batch.worker import BatchWorker, Resolve, WorkerProgress
from core.services.keys import resolve_api_key
from core.services.providers import get_provider
from core.services.store import Store
from core.services.store.owner import current_owner
from core.types import RunSpec
from core.wire.errors import ConfigError

__all__ = ["add_batch_worker_parser", "cmd_batch_worker"]


def add_batch_worker_parser(sub: Any) -> None:
    worker = sub.add_parser(
        "batch-worker",
        help="take items of the batches handed to workers from the shared history and run them here",
        description=(
            "Runs items of the batches handed to workers (python -m core batch FILE --workers, or the "
            "Batch page) with this machine's provider, key and limits; start one on every machine "
            "that shares the history (CONTINUUM_DB=postgresql://…)."
        ),
    )
    add_target_arguments(worker, provider_default=None)
    worker.add_argument(
        "--concurrency",
        type=number("concurrency"),
        default=DEFAULT_CONCURRENCY,
        help=f"this worker's requests in flight at most (default {DEFAULT_CONCURRENCY}); "
        "rate limits (HTTP 429) lower it on the fly",
    )
    worker.add_argument("--batch", metavar="BATCH_ID", help="only items of this batch")
    worker.add_argument(
        "--until-done",
        action="store_true",
        help="exit once every item is done (default: keep waiting for new batches)",
    )
    worker.add_argument("--quiet", action="store_true", help="no progress display")
    add_timeout_arguments(worker)


@contextlib.contextmanager
def resolver(args: argparse.Namespace) -> Iterator[Resolve]:
    """How this worker runs a batch: with ``--provider``, that target and key for every batch
    (the batch's model unless ``--model``); else each batch's own provider and base URL."""
    if args.provider:
        with open_target(
            args.provider,
            base_url=args.base_url,
            model=args.model,
            api_key_env=args.api_key_env,
            demo_rate=args.demo_rate,
            need_model=False,
        ) as target:

            def fixed(settings: RunSpec) -> tuple[RunSpec, str | None]:
                spec = dataclasses.replace(
                    settings,
                    provider=target.provider.id,
                    base_url=target.base_url,
                    model=args.model or settings.model,
                )
                return spec, target.api_key

            yield fixed
        return
    if args.base_url or args.api_key_env:
        raise UsageError("--base-url and --api-key-env need --provider")
    with contextlib.ExitStack() as stack:
        demo: list[str] = []
        lock = threading.Lock()

        def own(settings: RunSpec) -> tuple[RunSpec, str | None]:
            provider = get_provider(settings.provider)
            if provider.is_demo:
                with lock:
                    if not demo:
                        demo.append(stack.enter_context(start_demo_server(rate=args.demo_rate)).base_url)
                return dataclasses.replace(settings, base_url=demo[0]), None
            key = resolve_api_key(provider.id, api_key_env=settings.api_key_env)
            if provider.needs_key and not key:
                raise ConfigError(f"No API key found for {provider.label}.", hint=provider.key_hint())
            return settings, key

        yield own


def worker_line(p: WorkerProgress) -> str:
    owner = current_owner()
    limited = f" · {p.rate_limits} rate limits" if p.rate_limits else ""
    resumed = f" · {p.resumed} resumed" if p.resumed else ""
    return (
        f"worker {owner.host}:{owner.pid} · {p.finished} finished · {p.running} running · {p.failed} failed"
        f"{resumed} · concurrency {p.limit}/{p.max_limit}{limited} · {duration(p.elapsed_s)}"
    )


def _item_ended(display: BatchDisplay, item_id: str, status: str) -> None:
    if status == "failed":
        display.line(f"item {item_id!r} failed (see it with: python -m core runs list)")


def cmd_batch_worker(args: argparse.Namespace) -> int:
    display = BatchDisplay(sys.stderr, enabled=not args.quiet)
    with Store() as store, resolver(args) as resolve:
        store.check_writable()  # results go to the history: refuse before anything is taken
        worker = BatchWorker(
            store,
            resolve,
            concurrency=args.concurrency,
            batch_id=args.batch,
            until_done=args.until_done,
            timeouts=timeouts_from_args(args),
            on_item=lambda item_id, status: _item_ended(display, item_id, status),
        )
        owner = current_owner()
        display.line(f"batch worker {owner.host}:{owner.pid}: taking items (history: {store.path})")
        progress = drive(
            worker, display, worker_line, "items in flight are saved; another worker resumes them"
        )
    print(
        f"batch worker: {progress.finished} finished, {progress.failed} failed, {progress.stopped} left to "
        f"other workers · {duration(progress.elapsed_s)}",
        file=sys.stderr,
    )
    if progress.error:
        print(f"error: {progress.error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
