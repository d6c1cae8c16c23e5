"""``runs list | show | export | resume | delete | copy``: the run history on the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from core.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    add_timeout_arguments,
    check_outputs,
    open_target,
    positive_int,
    timeouts_from_args,
    url_path,
)
from core.cli.run import add_limit_arguments, add_output_arguments, execute, report
from core.cli.runs_copy import add_copy_parser, cmd_copy
from core.services.export import download_name, export
from core.services.round_requests import RequestUnavailable, curl_command, round_request
from core.services.steering import edited
from core.services.store import RUN_STATUSES, Store, StoreError
from core.types import RunResult

FORMATS = ("md", "txt", "json", "csv")


def add_runs_parser(sub: Any) -> None:
    runs = sub.add_parser("runs", help="the run history: list, show, export, resume, delete, copy")
    verbs = runs.add_subparsers(dest="verb", required=True, metavar="VERB")

    listing = verbs.add_parser("list", help="the latest runs, newest first")
    listing.add_argument("--search", help="words that must all appear in the prompt or title")
    listing.add_argument("--provider")
    listing.add_argument("--model")
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--limit", type=positive_int, default=20)

    show = verbs.add_parser("show", help="a run's rounds and totals, or one round's request")
    show.add_argument("run_id")
    show.add_argument("--text", action="store_true", help="also print the assembled answer")
    show.add_argument(
        "--round",
        type=positive_int,
        metavar="N",
        help="print round N's request body as sent (JSON; where it went on stderr)",
    )
    show.add_argument(
        "--curl", action="store_true", help="with --round: print it as a curl command ($API_KEY for the key)"
    )

    export = verbs.add_parser("export", help="write a run as md, txt, json or csv")
    export.add_argument("run_id")
    export.add_argument("--format", choices=FORMATS, default="md")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")

    resume = verbs.add_parser("resume", help="continue a run: more rounds, a larger target, another strategy")
    resume.add_argument("run_id")
    add_limit_arguments(resume, defaults=False)
    resume.add_argument("--api-key-env", metavar="NAME", help="the variable holding the key")
    resume.add_argument("--base-url", help="another base URL for the same provider")
    resume.add_argument("--demo-rate", type=float, default=0.0, help="demo runs: tokens per second")
    resume.add_argument(
        "--from-file", type=Path, metavar="FILE", help="go on from this edited text (- stdin)"
    )
    add_output_arguments(resume)
    add_timeout_arguments(resume)

    delete = verbs.add_parser("delete", help="delete a run and its rounds")
    delete.add_argument("run_id")

    add_copy_parser(verbs)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def find_run(store: Store, run_id: str) -> str:
    """Accept a unique prefix of a run id, as git does."""
    if store.exists(run_id):
        return run_id
    matches = [s.id for s in store.list_runs(limit=100_000) if s.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run {run_id!r} in the history ({store.path}); see `python -m core runs list`")
    raise UsageError(f"{run_id!r} matches {len(matches)} runs; give more of the id")


def cmd_runs(args: argparse.Namespace) -> int:
    check_outputs(
        ("--output", getattr(args, "output", None)),
        ("--transcript", getattr(args, "transcript", None)),
        sends=args.verb == "resume",
    )
    if args.verb == "copy":
        return cmd_copy(args)  # two histories, neither of them necessarily CONTINUUM_DB's
    with Store() as store:
        store.mark_interrupted()
        if args.verb == "list":
            return _list(store, args)
        run_id = find_run(store, args.run_id)
        if args.verb == "show":
            return _show(store, run_id, args)
        if args.verb == "export":
            return _export(store, run_id, args)
        if args.verb == "delete":
            store.delete(run_id)
            print(f"deleted run {run_id}", file=sys.stderr)
            return EXIT_OK
    return _resume(run_id, args)  # outside the `with`: execute() opens the store itself


def _list(store: Store, args: argparse.Namespace) -> int:
    runs = store.list_runs(
        query=args.search, provider=args.provider, model=args.model, status=args.status, limit=args.limit
    )
    if not runs:
        print("no runs yet: start one with `python -m core run --provider demo --prompt …`", file=sys.stderr)
        return EXIT_OK
    print(
        f"{'id':<10} {'date':<16} {'status':<11} {'stop':<17} {'rounds':>6} {'tokens':>8} {'cost $':>8} {'source':<6}  title"
    )
    for s in runs:
        cost = f"{s.cost:.4f}" if s.cost is not None else "-"
        mark = "~" if s.tokens_estimated else ""
        print(
            f"{s.id[:8]:<10} {_when(s.created_at):<16} {s.status:<11} {s.stop_reason or '-':<17} "
            f"{s.rounds:>6} {mark + format(s.completion_tokens, ','):>8} {cost:>8} {s.source or '-':<6}  {s.display_title[:60]}"
        )
    return EXIT_OK


def _show(store: Store, run_id: str, args: argparse.Namespace) -> int:
    if args.curl and args.round is None:
        raise UsageError("--curl prints one round's request: add --round N")
    result = store.load(run_id)
    if args.round is not None:
        return _show_request(result, args.round, curl=args.curl)
    summary = store.summary(run_id)
    spec = result.spec
    print(f"run {run_id}  ({summary.status if summary else '?'}, stop: {result.stop_reason or '-'})")
    print(
        f"provider {spec.provider} · model {spec.model} · strategy {spec.strategy} · {_when(result.started_at)}"
    )
    print(f"prompt: {spec.prompt[:200]!r}")
    if result.error:
        print(f"error: {result.error.message}")
    print(f"{'round':>5} {'finish':<14} {'in':>8} {'out':>7} {'ttft s':>7} {'dur s':>7} {'chars':>7}  flags")
    for r in result.rounds:
        mark = "~" if r.tokens_estimated else ""
        flags = ",".join(str(f.get("kind")) for f in r.seam_flags) or ""
        ttft = f"{r.ttft_s:.2f}" if r.ttft_s is not None else "-"
        print(
            f"{r.index:>5} {r.finish_reason or '-':<14} {mark}{r.prompt_tokens:>7,} {mark}{r.completion_tokens:>6,} "
            f"{ttft:>7} {r.duration_s:>7.2f} {len(r.text):>7,}  {flags}"
        )
    totals = result.totals()
    print(
        f"totals: {totals['rounds']} rounds, {totals['completion_tokens']:,} tokens out, "
        f"{totals['prompt_tokens_billed']:,} tokens in (billed), cost "
        + (f"${totals['cost']:.4f}" if totals["cost"] is not None else "unknown")
    )
    if args.text:
        print()
        print(result.text)
    return EXIT_OK


def _show_request(result: RunResult, index: int, *, curl: bool) -> int:
    """Round ``index``'s request: the body (or a curl command) on stdout, where it went on stderr."""
    try:
        request = round_request(result, index)
    except IndexError:
        have = f"rounds 1 to {len(result.rounds)}" if result.rounds else "no rounds"
        raise UsageError(f"run {result.run_id} has {have}, not round {index}") from None
    except RequestUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sent = f"sent {request.attempts} times (retries)" if request.attempts > 1 else "sent once"
    held = f", {len(request.held_back):,} held back" if request.held_back else ""
    print(
        f"round {index}: POST {request.url} · {request.strategy} · max_tokens {request.body.get('max_tokens')} "
        f"· {request.answer_chars:,} characters of answer so far{held} · {sent}",
        file=sys.stderr,
    )
    for note in request.notes:
        print(f"note: {note}", file=sys.stderr)
    if curl and request.keyed:
        print("set API_KEY to the key first (export API_KEY=…)", file=sys.stderr)
    out = curl_command(request).encode("utf-8") if curl else request.data  # UTF-8 whatever the locale
    sys.stdout.buffer.write(out + b"\n")
    sys.stdout.flush()
    return EXIT_OK


def _export(store: Store, run_id: str, args: argparse.Namespace) -> int:
    result = store.load(run_id)
    data = export(result, args.format)
    if args.output:
        args.output.write_bytes(data)
        print(
            f"wrote {args.output} ({len(data):,} bytes; suggested name {download_name(result, args.format)})",
            file=sys.stderr,
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def _resume(run_id: str, args: argparse.Namespace) -> int:
    with Store() as store:
        if store.is_active(run_id):
            print(f"error: run {run_id} is still running in another process", file=sys.stderr)
            return EXIT_ERROR
        result = store.load(run_id)
    if args.from_file is not None:  # the run records the edit and goes on from exactly this text
        try:
            text = sys.stdin.read() if str(args.from_file) == "-" else args.from_file.read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --from-file {args.from_file}: {exc.strerror or exc}") from exc
        edited(result, text)
    spec = result.spec
    for name in ("max_tokens", "max_rounds", "target_tokens", "context_window", "strategy", "cost_limit"):
        value = getattr(args, name)
        if value is not None:
            setattr(spec, name, value)
    if args.max_rounds is None:
        spec.max_rounds = len(result.rounds) + 20  # "more rounds" by default
    elif args.max_rounds <= len(result.rounds):
        spec.max_rounds = len(result.rounds) + args.max_rounds
    result.stop_reason = None
    with open_target(
        spec.provider,
        base_url=args.base_url or (None if spec.provider == "demo" else spec.base_url),
        model=spec.model,
        api_key_env=args.api_key_env or spec.api_key_env,
        demo_rate=args.demo_rate,
        demo_path=url_path(spec.base_url) if spec.provider == "demo" else None,
    ) as target:
        spec.base_url = target.base_url
        try:
            finished = execute(
                spec,
                target,
                quiet=args.quiet,
                save=not args.no_save,
                resume=result,
                keep_window=True,
                timeouts=timeouts_from_args(args),
            )
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return report(args, finished)
