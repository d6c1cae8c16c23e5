"""``runs copy --from SOURCE [--to DESTINATION] [--merge]``: one history into another.

Moves a single machine's SQLite history into a team's PostgreSQL (or any history into any other:
see :mod:`core.services.store.copy`). Progress goes to stderr; exit 0 when copied, 1 when either
end cannot be used or the copy is refused (a destination that already holds runs, without
``--merge``), 2 on bad usage (a source file that does not exist).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from core.cli.common import EXIT_OK, UsageError
from core.services.store import default_db_path
from core.services.store.copy import CopyReport, TableCopy, copy_history
from core.services.store.dialect import is_postgresql_url, redact_url


def add_copy_parser(verbs: Any) -> None:
    copy = verbs.add_parser(
        "copy",
        help="copy a history into another (a SQLite file into PostgreSQL): every run, round, edit and batch",
        description="Copy every row of the history SOURCE into DESTINATION, both first upgraded to this "
        "version's schema. Refused when DESTINATION already holds a history, unless --merge.",
    )
    copy.add_argument(
        "--from", dest="source", required=True, metavar="SOURCE", help="a SQLite file or a postgresql:// URL"
    )
    copy.add_argument(
        "--to",
        dest="destination",
        metavar="DESTINATION",
        help="a SQLite file or a postgresql:// URL (default: the history CONTINUUM_DB names); "
        "keep the password out of it (PGPASSWORD or ~/.pgpass)",
    )
    copy.add_argument(
        "--merge",
        action="store_true",
        help="copy into a history that has rows already: skip the rows already there (and a run's "
        "rounds and edits with it); those stay as they are",
    )
    copy.add_argument("--quiet", action="store_true", help="no progress on stderr, only the final line")


def cmd_copy(args: argparse.Namespace) -> int:
    source = args.source
    if not is_postgresql_url(source) and not Path(source).expanduser().exists():
        raise UsageError(f"--from {source}: no such file; nothing was copied")
    destination = args.destination or default_db_path()
    line = _Line(sys.stderr, quiet=args.quiet)
    line.say(f"copying {_shown(source)} into {_shown(destination)}")
    report = copy_history(source, destination, merge=args.merge, progress=line.table)
    line.done(report)
    return EXIT_OK


def _shown(target: str | Path) -> str:
    return redact_url(str(target)) if is_postgresql_url(target) else str(target)


class _Line:
    """The progress on stderr: one redrawn line per table on a terminal, its total otherwise."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.last = 0.0
        self.table_name = ""

    def say(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()

    def table(self, done: TableCopy) -> None:
        if self.quiet:
            return
        finished = done.copied + done.skipped >= done.rows
        now = time.monotonic()
        if self.tty and (finished or now - self.last >= 0.1):
            self.last = now
            self.stream.write(f"\r\x1b[K{done.name}: {done.copied + done.skipped:,} of {done.rows:,} rows")
            self.stream.flush()
        if finished and done.name != self.table_name:
            self.table_name = done.name
            self._end_table(done)

    def _end_table(self, done: TableCopy) -> None:
        skipped = f" ({done.skipped:,} already there, skipped)" if done.skipped else ""
        self.stream.write(("\r\x1b[K" if self.tty else "") + f"{done.name}: {done.rows:,} rows{skipped}\n")
        self.stream.flush()

    def done(self, report: CopyReport) -> None:
        copied = ", ".join(f"{t.copied:,} {t.name.replace('_', ' ')}" for t in report.tables if t.copied)
        skipped = sum(t.skipped for t in report.tables)
        notes = []
        if skipped:
            notes.append(f"{skipped:,} rows already there skipped")
        if report.interrupted:
            notes.append(
                f"{len(report.interrupted):,} of its runs left running by a process that is gone: interrupted"
            )
        tail = f" ({'; '.join(notes)})" if notes else ""
        self.stream.write(
            f"copied {copied or 'nothing'} from {report.source} into {report.destination} "
            f"in {report.seconds:.1f} s{tail}\n"
        )
        self.stream.flush()
