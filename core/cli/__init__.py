"""The command line: ``python -m core run|probe|models|runs|batch|batch-worker|serve|demo``.

Exit codes: 0 when a run ended normally (finished or a limit), 1 on error,
2 on bad usage. Progress goes to stderr; the answer to ``--output`` or stdout.
SIGTERM and SIGHUP (``timeout``, systemd, ``docker stop``, a closed terminal)
end every command exactly as Ctrl+C does.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from core.cli.batch import add_batch_parser, cmd_batch
from core.cli.batch_worker import add_batch_worker_parser, cmd_batch_worker
from core.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, on_stop_signal
from core.cli.run import add_run_parser, cmd_models, cmd_probe, cmd_run
from core.cli.runs import add_runs_parser, cmd_runs, find_run
from core.cli.serve import add_serve_parser, cmd_serve
from core.demo.server import main as demo_main
from core.services.export import export
from core.services.store import Store, StoreError
from core.wire.errors import ConfigError, ContinuumError

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def load_run_transcript(run_id: str) -> dict[str, Any]:
    """A run of the history (a unique id prefix will do) as its JSON transcript, the JSON download:
    what ``demo --replay-run`` hands the demo model (which reads no history itself)."""
    try:
        with Store() as store:
            result = store.load(find_run(store, run_id))
    except (UsageError, StoreError) as exc:
        raise ValueError(str(exc)) from None
    transcript: dict[str, Any] = json.loads(export(result, "json"))
    return transcript


def cmd_demo(args: argparse.Namespace) -> int:
    return int(demo_main(list(args.demo_args), load_run=load_run_transcript) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Continuum: long answers from LLM APIs by response continuation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(sub)
    add_runs_parser(sub)
    add_batch_parser(sub)
    add_batch_worker_parser(sub)
    add_serve_parser(sub)
    demo = sub.add_parser(
        "demo",
        help="serve the offline demo model: python -m core demo --port 8765 [--rate N] [--prefill ignored …] "
        "[--replay FILE | --replay-run RUN_ID] [--speed N]",
        add_help=False,
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    return parser


COMMANDS = {
    "run": cmd_run,
    "probe": cmd_probe,
    "models": cmd_models,
    "runs": cmd_runs,
    "batch": cmd_batch,
    "batch-worker": cmd_batch_worker,
    "serve": cmd_serve,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["demo"]:  # its own parser: argparse's REMAINDER refuses leading --options
        return int(demo_main(words[1:], load_run=load_run_transcript) or 0)
    parser = build_parser()
    args = parser.parse_args(words)
    try:
        with on_stop_signal(signal.default_int_handler):  # SIGTERM and SIGHUP end it as Ctrl+C does
            return COMMANDS[args.command](args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContinuumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
