"""A sentinel API key used through whole runs appears in no artifact.

A random key ``sk-SENTINEL-<hex>`` goes through runs on the real demo model
(``auth=open``: whole successful runs; ``auth=key``: 401s, since the demo only
takes ``demo-key``) and through a server that echoes the key back in its
errors: via the command line (subprocesses, DEBUG logging), the engine with
the Recorder, a probe, a model list and a batch. Then every artifact is
searched for the key, its base64, URL-encoded and partial forms: the SQLite
files (bytes of the database, -wal and -shm, and every cell read back),
exports of every format (ZIP members unpacked), stdout/stderr, the Python log
at DEBUG, the demo server's request log, error messages and tracebacks.

The search is checked first: planted in a control artifact in each form, it
is found (tests below), so a leak would fail these tests.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import traceback
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.continuation import engine
from core.continuation.probe import probe
from core.demo import behaviour_url, demo_document, start_demo_server
from core.services.export import FORMATS, export
from core.services.store import Recorder, Store
from core.types import RunFinished, RunSpec
from core.wire.client import Client
from core.wire.errors import ContinuumError

ROOT = Path(__file__).resolve().parents[1]
KEY_VAR = "CONTINUUM_SENTINEL_KEY"  # the variable the runs read the key from (--api-key-env)
PROMPT = "Write about 700 tokens on the lighthouses of Brittany."


def new_sentinel() -> str:
    return "sk-SENTINEL-" + secrets.token_hex(16)


# ---------------------------------------------------------------- the search


def _b64_cores(data: bytes, encode) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The part of ``encode(x + data)`` fixed by ``data`` alone, for each of the 3 alignments."""
    cores = []
    for pad in (b"", b"\0", b"\0\0"):
        full = encode(pad + data).rstrip(b"=")
        start = (len(pad) * 4 + 2) // 3  # characters touched by the padding
        cores.append(full[start + 1 : len(full) - 2])  # drop the characters shared with neighbours
    return cores


def sentinel_forms(key: str) -> dict[str, bytes]:
    """Every form in which ``key`` (or enough of it to matter) could leak."""
    raw = key.encode()
    secret = key.rsplit("-", 1)[1]  # the random part: "sk-SENTINEL-" alone is no leak
    forms = {
        "raw": raw,
        "random part": secret.encode(),
        "first 12 of the random part": secret[:12].encode(),
        "last 12 of the random part": secret[-12:].encode(),
        "url-encoded": urllib.parse.quote(key, safe="").encode(),
        "utf-16": key.encode("utf-16-le"),
    }
    for i, core in enumerate(_b64_cores(raw, base64.b64encode)):
        forms[f"base64 ({i})"] = core
    for i, core in enumerate(_b64_cores(raw, base64.urlsafe_b64encode)):
        forms[f"base64url ({i})"] = core
    return forms


CASE_FREE = ("raw", "random part", "first 12 of the random part", "last 12 of the random part")


def _expand(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """The bytes of an artifact, plus the members of ZIP archives and the cells of SQLite files."""
    yield name, data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from _expand(f"{name}!{member}", archive.read(member))


def _sqlite_cells(path: Path) -> bytes:
    """Every cell of every table of a SQLite file, as text (a value split across pages joined again)."""
    out = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for line in conn.iterdump():
            out.append(line)
    finally:
        conn.close()
    return "\n".join(out).encode("utf-8", "surrogatepass")


def find_leaks(key: str, artifacts: dict[str, bytes]) -> list[str]:
    """``"<artifact>: <form>"`` for every form of ``key`` found in any artifact."""
    forms = sentinel_forms(key)
    found = []
    for name, data in artifacts.items():
        for part, blob in _expand(name, data):
            lower = blob.lower()
            for form, needle in forms.items():
                hit = needle.lower() in lower if form in CASE_FREE else needle in blob
                if hit:
                    found.append(f"{part}: {form}")
    return found


def files_under(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (SQLite databases also as their cells read back)."""
    artifacts: dict[str, bytes] = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            artifacts[str(path)] = data
            if data[:16] == b"SQLite format 3\0":
                artifacts[f"{path} (cells)"] = _sqlite_cells(path)
    return artifacts


def assert_no_leak(key: str, artifacts: dict[str, bytes]) -> None:
    assert artifacts, "nothing was searched"
    assert find_leaks(key, artifacts) == []


# ---------------------------------------------------------------- the search finds planted keys


@pytest.mark.parametrize("form", list(sentinel_forms("sk-SENTINEL-00")))
def test_the_search_finds_every_form_planted_in_a_control_artifact(form):
    key = new_sentinel()
    planted = b"{'note': 'before " + sentinel_forms(key)[form] + b" after'}"
    assert f"control: {form}" in find_leaks(key, {"control": planted})


@pytest.mark.parametrize("prefix", ["", "x", "xy", "Authorization: Bearer "])
def test_the_search_finds_base64_at_any_offset_and_an_upper_case_key(prefix):
    key = new_sentinel()
    assert find_leaks(key, {"b64": base64.b64encode(prefix.encode() + key.encode())})
    assert find_leaks(key, {"upper": key.upper().encode()})


def test_the_search_finds_a_key_in_a_sqlite_file_its_wal_and_a_zip_member(tmp_path):
    key = new_sentinel()
    db = tmp_path / "control.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", ("x" * 4090 + key,))  # spills over a page boundary
    conn.commit()
    found = find_leaks(key, files_under(tmp_path))
    conn.close()
    assert any(f.endswith("-wal: raw") for f in found) and any("(cells): raw" in f for f in found)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run.md", "text " * 100 + key)
    assert "ctl.zip!run.md: raw" in find_leaks(key, {"ctl.zip": archive.getvalue()})


def test_a_clean_artifact_has_no_leak():
    key = new_sentinel()
    other = new_sentinel()
    assert find_leaks(key, {"other": other.encode() + base64.b64encode(other.encode())}) == []


# ---------------------------------------------------------------- a server that echoes the key


class EchoingServer:
    """Answers every request 401 with the Authorization header in the message (like some proxies)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                body = json.dumps(
                    {"error": {"message": f"Incorrect API key provided: {auth[7:]} ({auth})", "type": "auth"}}
                ).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("WWW-Authenticate", f'Bearer realm="{auth}"')
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- engine, Recorder, exports, logs


@pytest.fixture
def verbose_demo(capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    """An in-process demo model logging every request line (its request log is captured stderr)."""
    with start_demo_server(rate=0.0, verbose=True) as server:
        yield server.base_url


def _error_texts(exc: BaseException) -> str:
    info = exc.to_info() if isinstance(exc, ContinuumError) else None
    return "\n".join(
        [str(exc), repr(exc), repr(vars(exc)), repr(info), "".join(traceback.format_exception(exc))]
    )


def test_a_sentinel_key_leaves_no_trace_in_the_engine_store_exports_logs_or_errors(
    tmp_path, caplog, capsys, verbose_demo, clean_env
):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    key = new_sentinel()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    db = tmp_path / "runs.sqlite3"
    texts: dict[str, bytes] = {}
    echoing = EchoingServer()
    try:
        with Store(db) as store:
            results = []
            for name, url in (
                ("open", behaviour_url(verbose_demo, auth="open", k="sentinel-open")),
                ("key", behaviour_url(verbose_demo, auth="key", k="sentinel-key")),
                ("echo", echoing.url),
            ):
                spec = RunSpec(
                    messages=[{"role": "user", "content": PROMPT}],
                    provider="custom",
                    base_url=url,
                    model="demo",
                    max_tokens=250,
                    context_window=8192,
                    api_key_env=KEY_VAR,
                    title=f"sentinel {name}",
                )
                events = list(Recorder(store).record(engine.run(spec, api_key=key)))
                finished = events[-1]
                assert isinstance(finished, RunFinished)
                results.append(finished)
                texts[f"events {name}"] = repr(events).encode()
            assert results[0].stop_reason == "finished" and results[0].result.text == demo_document(PROMPT)
            assert [r.stop_reason for r in results[1:]] == ["error", "error"]
            assert "Incorrect API key provided" in results[2].error.message  # the echo was scrubbed, not lost
            texts["files while the store is open"] = b"\n".join(files_under(tmp_path).values())
            for summary in store.list_runs():
                result = store.load(summary.id)
                texts[f"summary {summary.id}"] = repr(summary).encode()
                for fmt in FORMATS:
                    (artifacts / f"{summary.id}.{fmt}").write_bytes(export(result, fmt))
        with Client(behaviour_url(verbose_demo, auth="open"), key) as client:
            texts["models"] = repr(client.list_models()).encode()
        texts["probe"] = repr(probe(behaviour_url(verbose_demo, auth="open"), "demo", api_key=key)).encode()
        for url in (behaviour_url(verbose_demo, auth="key"), echoing.url):
            for call in ("models", "probe"):
                with pytest.raises(ContinuumError) as info:
                    if call == "models":
                        with Client(url, key) as client:
                            client.list_models()
                    else:
                        probe(url, "demo", api_key=key)
                texts[f"{call} error {url}"] = _error_texts(info.value).encode()
    finally:
        echoing.stop()
    out = capsys.readouterr()
    assert "POST /x/auth=open,k=sentinel-open/v1/chat/completions" in out.err  # the request log was kept
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG logging was on
    texts["demo request log"] = out.err.encode()
    texts["stdout"] = out.out.encode()
    texts["log"] = caplog.text.encode()
    texts["log records"] = repr([(r.name, r.msg, r.args) for r in caplog.records]).encode()
    assert_no_leak(key, {**texts, **files_under(tmp_path)})


# ---------------------------------------------------------------- the command line


CLI = "import logging, sys; logging.basicConfig(level=logging.DEBUG); from core.cli import main; sys.exit(main())"


@dataclass
class DemoProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[DemoProcess]:
    """``python -m core.demo --verbose`` in its own process, its request log in a file."""
    log = tmp_path / "logs" / "demo.log"
    log.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.demo", "--port", "0", "--rate", "0", "--verbose"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "listening on" in line, line
    try:
        yield DemoProcess(line.rsplit(" ", 1)[1].strip(), proc, log)
    finally:
        proc.terminate()
        proc.wait(10)


def cli(tmp_path: Path, env: dict[str, str], name: str, *args: str, stdin: bytes | None = None) -> int:
    """Run ``python -m core ARGS`` with DEBUG logging; stdout and stderr go to logs/<name>.*."""
    done = subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=120
    )
    logs = tmp_path / "logs"
    (logs / f"{name}.out").write_bytes(done.stdout)
    (logs / f"{name}.err").write_bytes(done.stderr)
    return done.returncode


def test_a_sentinel_key_leaves_no_trace_through_the_command_line(tmp_path, demo_process, clean_env):
    key = new_sentinel()
    out = tmp_path / "out"
    out.mkdir()
    db = tmp_path / "cli.sqlite3"
    env = {**clean_env, KEY_VAR: key, "CONTINUUM_DB": str(db), "PYTHONPATH": str(ROOT)}
    open_url = behaviour_url(demo_process.url, auth="open", k="cli-open")
    key_url = behaviour_url(demo_process.url, auth="key", k="cli-key")
    target = ["--provider", "custom", "--model", "demo", "--api-key-env", KEY_VAR]
    run = ["run", *target, "--max-tokens", "250", "--context-window", "8192", "--prompt", PROMPT]
    items = out / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"i{n}", "prompt": f"Write 120 tokens on tide {n}."}) + "\n" for n in range(3)
        )
    )
    batch = ["batch", str(items), *target, "--max-tokens", "100", "--context-window", "8192"]
    commands = {
        "run": (
            0,
            [
                *run,
                "--base-url",
                open_url,
                "--output",
                str(out / "a.md"),
                "--transcript",
                str(out / "a.json"),
            ],
        ),
        "run-401": (1, [*run, "--base-url", key_url]),
        "models": (0, ["models", *target, "--base-url", open_url]),
        "probe": (0, ["probe", *target, "--base-url", open_url]),
        "batch": (
            0,
            [
                *batch,
                "--base-url",
                behaviour_url(demo_process.url, auth="open"),
                "--out",
                str(out / "b.jsonl"),
                "--summary",
                str(out / "b.csv"),
                "--zip",
                str(out / "b.zip"),
            ],
        ),
        "batch-401": (
            1,
            [*batch, "--title", "refused", "--base-url", key_url, "--out", str(out / "c.jsonl")],
        ),
    }
    for name, (status, args) in commands.items():
        assert cli(tmp_path, env, name, *args) == status, name
    with Store(db) as store:
        run_id = next(r.id for r in store.list_runs() if r.status == "finished" and r.title != "refused")
    assert cli(tmp_path, env, "show", "runs", "show", run_id, "--text") == 0
    for fmt in ("json", "csv"):  # md and txt hold the answer only (all four are checked in-process)
        assert (
            cli(
                tmp_path,
                env,
                fmt,
                "runs",
                "export",
                run_id,
                "--format",
                fmt,
                "--output",
                str(out / f"e.{fmt}"),
            )
            == 0
        )
    assert (out / "a.md").read_text() == demo_document(PROMPT)
    assert "rejected" in (tmp_path / "logs" / "run-401.err").read_text()
    assert len((out / "b.jsonl").read_text().splitlines()) == 3
    demo_process.proc.terminate()
    demo_process.proc.wait(10)
    assert "/x/auth=open,k=cli-open/v1/chat/completions" in demo_process.log.read_text()
    assert "DEBUG" in (tmp_path / "logs" / "run.err").read_text()  # logging was at DEBUG
    assert_no_leak(key, files_under(tmp_path))
