"""A throwaway PostgreSQL server for the store tests, and the fixture that runs them on both backends.

- :func:`start_cluster` — ``initdb`` + ``pg_ctl`` from Debian's ``postgresql`` package
  (``/usr/lib/postgresql/<version>/bin``; ``make postgresql`` installs it) in a temporary folder,
  listening on a free loopback port only, trusted local logins, no fsync. As root it runs as the
  ``postgres`` user (``runuser``), since ``initdb`` refuses root. Stopped and removed at the end.
- ``pg_cluster`` — one cluster per test session (per xdist worker), None when PostgreSQL is not
  installed; with ``CONTINUUM_PG_REQUIRED=1`` (the Makefile's pytest target) that is a failure.
- ``store_db`` — parametrised ``sqlite`` / ``postgresql``: a fresh history, exported as
  ``CONTINUUM_DB`` (a SQLite file, or a PostgreSQL URL whose ``search_path`` is a new schema, so
  every test starts from an empty database in milliseconds). Returns that value.
  ``pg_db``: the same on PostgreSQL alone, for what only PostgreSQL has.
- :func:`raw_rows` — plain SQL on a history, beside the store (to check what is really stored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_REQUIRED_ENV = "CONTINUUM_PG_REQUIRED"
DATABASE = "continuum_test"
BACKENDS = ("sqlite", "postgresql")


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl, else None."""
    found = [
        p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()
    ]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    bindir: Path
    root: Path  # the temporary folder: data/ and the server log
    port: int
    user: str | None  # the system user the server runs as (None: this process's user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = DATABASE, schema: str | None = None) -> str:
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return f"{url}?options=-csearch_path%3D{schema}" if schema else url

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        done = self.run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.root / "server.log"
        done = self.run(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )
        if done.returncode:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {text[-2000:]}")
        admin(
            self.url("postgres"),
            f"CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'",
        )

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def admin(url: str, *statements: str) -> None:
    """Run ``statements`` outside a transaction (CREATE DATABASE needs that)."""
    import psycopg  # only the PostgreSQL half of the tests needs it

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def start_cluster(attempts: int = 3) -> Iterator[Cluster]:
    """A running throwaway cluster (see the module docstring); stopped and removed afterwards."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (make postgresql installs Debian's package)")
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="continuum-pg-"))
    if user:
        shutil.chown(root, user)
    cluster = Cluster(bindir, root, free_port(), user)
    try:
        for attempt in range(attempts):  # another process may take the free port first
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                cluster.stop()
                shutil.rmtree(cluster.data, ignore_errors=True)
                cluster.port = free_port()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | None]:
    if pg_bindir() is None:
        if os.environ.get(PG_REQUIRED_ENV) == "1":
            pytest.fail(f"PostgreSQL is not installed and {PG_REQUIRED_ENV}=1: run `make postgresql`")
        yield None
        return
    with start_cluster() as cluster:
        yield cluster


def fresh_pg_url(cluster: Cluster) -> str:
    """A URL on a new, empty schema of the test database."""
    schema = "t_" + uuid.uuid4().hex[:16]
    admin(cluster.url(), f"CREATE SCHEMA {schema}")
    return cluster.url(schema=schema)


def _pg_target(request: pytest.FixtureRequest) -> str:
    cluster = request.getfixturevalue("pg_cluster")
    if cluster is None:
        pytest.skip(f"PostgreSQL is not installed (make postgresql; {PG_REQUIRED_ENV}=1 makes this fail)")
    return fresh_pg_url(cluster)


@pytest.fixture(params=BACKENDS)
def store_db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | Path:
    """A fresh history on each backend, exported as CONTINUUM_DB; returns that value."""
    target = tmp_path / "continuum.sqlite3" if request.param == "sqlite" else _pg_target(request)
    monkeypatch.setenv("CONTINUUM_DB", str(target))
    return target


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL history only (for what SQLite does not have), exported as CONTINUUM_DB."""
    target = _pg_target(request)
    monkeypatch.setenv("CONTINUUM_DB", target)
    return target


def is_pg(target: str | Path) -> bool:
    return str(target).startswith("postgresql://")


def raw_rows(target: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders; a write is committed) run on the history ``target`` directly."""
    if is_pg(target):
        import psycopg  # only the PostgreSQL half of the tests needs it

        with psycopg.connect(str(target), autocommit=True) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    with contextlib.closing(sqlite3.connect(target)) as conn, conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def stored_bytes(target: str | Path) -> bytes:
    """Everything the history holds: the SQLite file with its -wal and -shm, or on PostgreSQL
    every row of every table of the history's schema, as text (to prove a secret is not in it)."""
    if not is_pg(target):
        files = [Path(f"{target}{suffix}") for suffix in ("", "-wal", "-shm")]
        return b"".join(path.read_bytes() for path in files if path.exists())
    tables = raw_rows(
        target, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    dump = [
        str(row)
        for (table,) in tables
        for row in raw_rows(target, f'SELECT CAST(t AS text) FROM "{table}" t')
    ]
    return "\n".join(dump).encode()
