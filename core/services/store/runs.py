"""The run history: :class:`Store` keeps runs and their rounds in SQLite (or PostgreSQL).

One connection per store, shared by every thread behind a lock (SQLite
serialises writers anyway; each write is a short transaction). Several
processes (the app, a ``python -m core run``) may use one file at once: WAL
lets readers run beside the writer and ``busy_timeout`` makes writers wait.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime

from core.types import ErrorInfo, Round, RunResult, RunSpec

from .db import StoreError
from .dialect import Connection
from .liveness import Liveness
from .owner import current_owner
from .query import TOTALS_SQL, UPSERT_ROUND_SQL, changeable, filters, seen_runs
from .rows import (
    INTERRUPTED,
    RUN_STATUSES,
    SUMMARY_COLUMNS,
    RunSummary,
    dumps,
    error_from_json,
    json_object,
    round_from_row,
    round_row,
    status_for,
)
from .sanitize import clean_spec_dict
from .search import refold, search_text


class Store(Liveness):
    """Runs and rounds in one SQLite file (``$CONTINUUM_DB`` or the user data directory), or in
    the PostgreSQL database ``$CONTINUUM_DB`` names by URL (``postgresql://…``).

    Opening migrates the file to the current schema (an up-to-date file is only
    read; see :class:`~core.services.store.database.Database` for how a file that cannot be
    used, or only read, is handled). Thread-safe. Never stores an API key: specs
    are cleaned of secret-looking fields before they are written.
    """

    # ------------------------------------------------------------ runs

    def create_run(self, spec: RunSpec, *, run_id: str | None = None, batch_id: str | None = None) -> str:
        """Insert a new run in status "running", owned by this process and by the viewer (a run of a
        batch: by the batch's person); returns its id."""
        run_id = run_id or str(uuid.uuid4())
        now = time.time()
        owner = current_owner()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (id, created_at, updated_at, started_at, status, batch_id,"
                " owner_host, owner_pid, owner_started, heartbeat_at, spec_json, person, person_name)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, '{}',"
                " coalesce(?, (SELECT person FROM batches WHERE id = ?)),"
                " coalesce(?, (SELECT person_name FROM batches WHERE id = ?)))",
                (
                    run_id,
                    now,
                    now,
                    now,
                    batch_id,
                    owner.host,
                    owner.pid,
                    owner.started,
                    now,
                    self.viewer,
                    batch_id,
                    self.viewer_name,
                    None if self.viewer else batch_id,  # the viewer's run: the viewer's name only
                ),
            )
            self._set_spec(conn, run_id, spec)
        return run_id

    def exists(self, run_id: str) -> bool:
        """Whether the run is in the history, for this viewer (:mod:`.viewers`)."""
        return self._sees(run_id)

    def load(self, run_id: str) -> RunResult:
        """The run as a RunResult, its unfinished round included (see Round rows in DESIGN §2).

        A round that was streaming when its process died comes back with
        ``finish_reason`` None and ``error`` "interrupted", ready for
        ``engine.run(spec, resume=result)``.
        """
        seen, seen_params = seen_runs(self.viewer)
        with self._lock:
            found = self._read(f"SELECT * FROM runs WHERE id = ? AND {seen}", (run_id, *seen_params))
            if not found:
                raise StoreError(f"no run {run_id!r} in the history ({self.path})")
            run = found[0]
            rows = self._read("SELECT * FROM rounds WHERE run_id = ? ORDER BY idx", (run_id,))
            running = run["status"] == "running"
            rounds = [round_from_row(row, run_running=running) for row in rows]
            edits = self.edits_of(run_id)
        return RunResult(
            spec=RunSpec.from_dict(json_object(run["spec_json"])),
            rounds=rounds,
            stop_reason=run["stop_reason"],
            error=error_from_json(run["error_json"]),
            started_at=run["started_at"],
            finished_at=run["finished_at"],
            run_id=run["id"],
            edits=edits,
            thread_id=run["thread_id"],
            parent_id=run["parent_id"],
        )

    def summary(self, run_id: str) -> RunSummary | None:
        seen, params = seen_runs(self.viewer)
        rows = self._read(f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE id = ? AND {seen}", (run_id, *params))
        return RunSummary.from_row(rows[0]) if rows else None

    def list_runs(
        self,
        query: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        status: str | Iterable[str] | None = None,
        since: float | datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        until: float | datetime | None = None,
        batch_id: str | None = None,
    ) -> list[RunSummary]:
        """Newest first. ``query``: every word must appear in the title or prompt
        (case-insensitive, Unicode-aware) or the whole query is the run id."""
        where, params = filters(
            query, provider, model, status, since, until, batch_id, self.dialect, self.viewer
        )
        rows = self._read(
            f"SELECT {SUMMARY_COLUMNS} FROM runs {where}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        )
        return [RunSummary.from_row(row) for row in rows]

    def count_runs(
        self,
        query: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        status: str | Iterable[str] | None = None,
        since: float | datetime | None = None,
        *,
        until: float | datetime | None = None,
        batch_id: str | None = None,
    ) -> int:
        where, params = filters(
            query, provider, model, status, since, until, batch_id, self.dialect, self.viewer
        )
        return int(self._read(f"SELECT count(*) FROM runs {where}", params)[0][0])

    def facets(self) -> dict[str, list[str]]:
        """Distinct providers, models and statuses present, for filter widgets."""
        seen, params = seen_runs(self.viewer)
        return {
            column: [
                r[0]
                for r in self._read(
                    f"SELECT DISTINCT {column} FROM runs WHERE {seen} ORDER BY {column}", params
                )
            ]
            for column in ("provider", "model", "status")
        }

    def rename(self, run_id: str, title: str) -> None:
        mine, params = changeable(self.viewer)
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE runs SET title = ?, spec_json = {self.dialect.set_spec_title}, updated_at = ?"
                f" WHERE id = ? AND {mine}",
                (title, title, time.time(), run_id, *params),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no run {run_id!r} in the history")
            refold(conn, run_id)

    def delete(self, run_id: str) -> bool:
        """Delete a run and its rounds; False if there was no such run."""
        mine, params = changeable(self.viewer)
        with self._write() as conn:
            return conn.execute(f"DELETE FROM runs WHERE id = ? AND {mine}", (run_id, *params)).rowcount > 0

    def save(self, result: RunResult, *, status: str | None = None) -> str:
        """Store a whole RunResult (an imported transcript, a finished batch item); returns its id.

        Replaces the rounds of an existing run with the same ``run_id``.
        """
        run_id = result.run_id or str(uuid.uuid4())
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (id, created_at, updated_at, started_at, spec_json, person, person_name)"
                " VALUES (?, ?, ?, ?, '{}', ?, ?) ON CONFLICT (id) DO NOTHING",
                (run_id, now, now, result.started_at, self.viewer, self.viewer_name),
            )
            self._changing(conn, run_id)
            conn.execute("DELETE FROM rounds WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM edits WHERE run_id = ?", (run_id,))
            self._write_edits(conn, run_id, result.edits)
            if result.thread_id:
                self._join_thread(conn, run_id, result.thread_id, result.parent_id)
            self._finish(
                conn,
                run_id,
                spec=result.spec,
                status=status or status_for(result.stop_reason),
                stop_reason=result.stop_reason,
                error=result.error,
                started_at=result.started_at,
                finished_at=result.finished_at,
                rounds=result.rounds,
                keep=None,
            )
            conn.execute("UPDATE runs SET owner_pid = NULL, owner_started = NULL WHERE id = ?", (run_id,))
        result.run_id = run_id
        return run_id

    # ------------------------------------------------------------ used by Recorder

    def begin_run(self, run_id: str, spec: RunSpec) -> None:
        """(Re)open a run for recording: status running, owned by this process, with ``spec``.

        Creates the run if it does not exist. Rounds left unfinished by an earlier
        process become ordinary rounds with error "interrupted". Raises
        StoreError while another recorder (here or in a live process) holds it.
        """
        if self.is_active(run_id):
            raise StoreError(
                f"run {run_id} is still being recorded by another run in progress; "
                "stop that one (or wait for it to end) before resuming"
            )
        owner = current_owner()
        now = time.time()
        with self._write() as conn:
            self._changing(conn, run_id)
            cur = conn.execute(
                "UPDATE runs SET status = 'running', stop_reason = NULL, error_json = NULL,"
                " finished_at = NULL, owner_host = ?, owner_pid = ?, owner_started = ?,"
                " heartbeat_at = ?, updated_at = ? WHERE id = ?",
                (owner.host, owner.pid, owner.started, now, now, run_id),
            )
            if cur.rowcount:
                self._set_spec(conn, run_id, spec)
                conn.execute(
                    "UPDATE rounds SET live = 0, finish_reason = NULL, error = coalesce(error, ?)"
                    " WHERE run_id = ? AND live = 1",
                    (INTERRUPTED, run_id),
                )
                return
        self.create_run(spec, run_id=run_id)

    def start_round(self, run_id: str, round_: Round) -> None:
        """Insert (or reset) the live row of the round being streamed."""
        with self._write() as conn:
            self._held(conn, run_id)
            self._upsert_round(conn, run_id, round_, live=True)
            conn.execute(TOTALS_SQL, {"run_id": run_id, "now": time.time()})

    def append_live(self, run_id: str, index: int, text: str, reasoning: str) -> None:
        """Append streamed text to the live row: only that row is rewritten."""
        with self._write() as conn:
            self._held(conn, run_id)
            cur = conn.execute(
                "UPDATE rounds SET text = text || ?, reasoning = reasoning || ?,"
                " characters = characters + ?, reasoning_characters = reasoning_characters + ?"
                " WHERE run_id = ? AND idx = ?",
                (text, reasoning, len(text), len(reasoning), run_id, index),
            )
            if cur.rowcount == 0:
                live = Round(index=index, text=text, reasoning=reasoning, started_at=time.time())
                self._upsert_round(conn, run_id, live, live=True)
            conn.execute(TOTALS_SQL, {"run_id": run_id, "now": time.time()})

    def write_rounds(self, run_id: str, rounds: Iterable[Round]) -> None:
        """Write finished rounds (replacing their rows) and refresh the run's totals."""
        with self._write() as conn:
            self._held(conn, run_id)
            for round_ in rounds:
                self._upsert_round(conn, run_id, round_, live=False)
            conn.execute(TOTALS_SQL, {"run_id": run_id, "now": time.time()})

    def heartbeat(self, run_id: str) -> None:
        with self._write() as conn:
            self._held(conn, run_id)
            now = time.time()
            conn.execute("UPDATE runs SET heartbeat_at = ?, updated_at = ? WHERE id = ?", (now, now, run_id))

    def finish_run(
        self,
        run_id: str,
        *,
        spec: RunSpec,
        status: str,
        stop_reason: str | None,
        error: ErrorInfo | None,
        finished_at: float | None,
        started_at: float | None = None,
        rounds: Iterable[Round] = (),
        keep: Iterable[int] | None = None,
    ) -> None:
        """End a run: write the changed ``rounds``, drop rows whose index is not in ``keep``.

        Raises :class:`RunTakenOver` (nothing written) when another process now owns the run."""
        with self._write() as conn:
            self._held(conn, run_id)
            self._finish(
                conn,
                run_id,
                spec=spec,
                status=status,
                stop_reason=stop_reason,
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                rounds=rounds,
                keep=keep,
            )

    def stored_rounds(self, run_id: str) -> list[Round]:
        """The rounds of a run as stored (live rows as they are)."""
        return self.rounds_from(run_id, 0)

    # ------------------------------------------------------------ helpers

    def _finish(
        self,
        conn: Connection,
        run_id: str,
        *,
        spec: RunSpec,
        status: str,
        stop_reason: str | None,
        error: ErrorInfo | None,
        started_at: float | None,
        finished_at: float | None,
        rounds: Iterable[Round],
        keep: Iterable[int] | None,
    ) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
        for round_ in rounds:
            self._upsert_round(conn, run_id, round_, live=False)
        if keep is not None:
            indices = sorted(set(keep))
            marks = ",".join("?" * len(indices))
            kept = f" AND idx NOT IN ({marks})" if indices else ""  # PostgreSQL refuses an empty IN ()
            conn.execute(f"DELETE FROM rounds WHERE run_id = ?{kept}", (run_id, *indices))
        self._set_spec(conn, run_id, spec)
        conn.execute(
            "UPDATE runs SET status = ?, stop_reason = ?, error_json = ?,"
            " started_at = coalesce(?, started_at), finished_at = ? WHERE id = ?",
            (status, stop_reason, dumps(error.to_dict()) if error else None, started_at, finished_at, run_id),
        )
        conn.execute(TOTALS_SQL, {"run_id": run_id, "now": time.time()})

    @staticmethod
    def _set_spec(conn: Connection, run_id: str, spec: RunSpec) -> None:
        data = clean_spec_dict(spec.to_dict())
        conn.execute(
            "UPDATE runs SET spec_json = ?, title = ?, prompt = ?, provider = ?, base_url = ?, model = ?,"
            " strategy = ?, search_text = ? WHERE id = ?",
            (
                dumps(data),
                spec.title,
                spec.prompt,
                spec.provider,
                data.get("base_url", ""),
                spec.model,
                spec.strategy,
                search_text(spec.title, spec.prompt),
                run_id,
            ),
        )

    @staticmethod
    def _upsert_round(conn: Connection, run_id: str, round_: Round, *, live: bool) -> None:
        conn.execute(
            UPSERT_ROUND_SQL, {"run_id": run_id, "idx": round_.index, **round_row(round_, live=live)}
        )
