"""The demo provider's Replay choice: a recorded run streamed again, at its recorded pace.

For the demo provider the Studio's Model list also offers ``Replay: <title>``: the
transcripts shipped in ``core/demo/transcripts/`` and the latest saved runs of the
history. Such a choice (a model id of the form ``replay:file:NAME`` or
``replay:run:ID``) runs against a demo server started with that recording,
``core.demo.start_demo_server(replay=…, speed=…)``, whose model ``replay`` serves the
recorded rounds at their recorded pace divided by the speed. The run's spec holds the
server's base URL and the model ``replay``, like any other demo run.

One server per recording and speed, cached for the process (``st.cache_resource``);
a server the cache lets go (more than :data:`SERVERS` of them) is stopped.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import streamlit as st

from core.demo import TRANSCRIPTS, DemoServer, ReplayError, start_demo_server
from core.demo.replay import MODEL
from core.types import RunResult, RunSpec
from core.wire.client import Client, ModelInfo
from core.wire.errors import ConfigError

PREFIX = "replay:"
SPEEDS: dict[float, str] = {1.0: "1×", 2.0: "2×", 4.0: "4×", 0.0: "Instant"}  # pace factor: label
SAVED_RUNS = 8  # the latest saved runs offered
SERVERS = 6  # replay servers kept at once

__all__ = [
    "MODEL",
    "SPEEDS",
    "Served",
    "choice_of",
    "is_choice",
    "label",
    "options",
    "recorded_spec",
    "serve",
]


@dataclass(frozen=True)
class Served:
    """A replay server of one recording at one speed, and its model's entry."""

    server: DemoServer
    info: ModelInfo | None

    @property
    def base_url(self) -> str:
        return str(self.server.base_url)


_live: dict[str, tuple[str, float]] = {}  # base URL -> (choice, speed), servers still running
_live_lock = threading.Lock()


def is_choice(model: str | None) -> bool:
    return bool(model) and str(model).startswith(PREFIX)


@lru_cache(maxsize=1)
def _shipped() -> dict[str, tuple[str, RunSpec]]:
    """The shipped transcripts: choice -> (title, spec)."""
    out = {}
    for path in sorted(TRANSCRIPTS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        spec = RunSpec.from_dict(data["spec"])
        title = (spec.title or path.stem).removeprefix("Replay sample: ")
        out[f"{PREFIX}file:{path.stem}"] = (title, spec)
    return out


def _history() -> Any:
    from pages._history import history  # the Studio's history: imported late (it imports this module)

    return history()


def _saved() -> dict[str, str]:
    """The latest saved runs that wrote something: choice -> title."""
    try:
        runs = _history().list_runs(limit=4 * SAVED_RUNS)
    except Exception:  # noqa: BLE001 - a history that cannot be read offers no saved runs
        return {}
    out = {}
    for run in runs:
        if run.status != "running" and run.rounds and run.characters and run.batch_id is None:
            out[f"{PREFIX}run:{run.id}"] = run.display_title
        if len(out) == SAVED_RUNS:
            break
    return out


def options() -> list[str]:
    """The replay choices offered: the shipped transcripts, then the latest saved runs."""
    return [*_shipped(), *_saved()]


def label(choice: str) -> str:
    """``Replay: <title>`` for a replay choice; any other model id as it is."""
    if not is_choice(choice):
        return choice
    shipped = _shipped().get(choice)
    if shipped is not None:
        return f"Replay: {shipped[0]}"
    if choice.startswith(f"{PREFIX}run:"):
        summary = _history().summary(choice.removeprefix(f"{PREFIX}run:"))
        return f"Replay: {summary.display_title if summary else 'a deleted run'} · saved run"
    return choice


def _transcript(choice: str) -> dict[str, Any]:
    """The recording behind ``choice``; ReplayError for anything else (a typed id, a deleted run)."""
    if choice in _shipped():
        name = choice.removeprefix(f"{PREFIX}file:")
        return dict(json.loads((TRANSCRIPTS / f"{name}.json").read_text(encoding="utf-8")))
    if choice.startswith(f"{PREFIX}run:"):
        run_id = choice.removeprefix(f"{PREFIX}run:")
        store = _history()
        if store.exists(run_id):
            return dict(store.load(run_id).to_dict())
    raise ReplayError(f"There is no recording {choice!r} to replay: choose one of the Replay entries.")


def recorded_spec(choice: str) -> RunSpec | None:
    """The recorded run's settings (prompt, round size…) to put in the form; None if unknown."""
    shipped = _shipped().get(choice)
    if shipped is not None:
        return shipped[1]
    try:
        return RunResult.from_dict(_transcript(choice)).spec
    except (ReplayError, KeyError, ValueError):
        return None


def _stop(served: Served) -> None:
    with _live_lock:
        _live.pop(served.base_url, None)
    served.server.stop()


@st.cache_resource(show_spinner=False, max_entries=SERVERS, on_release=_stop)
def _server(choice: str, speed: float) -> Served:
    server = start_demo_server(replay=_transcript(choice), speed=speed)
    try:
        info = next((m for m in Client(server.base_url).list_models(with_meta=True) if m.id == MODEL), None)
    except Exception:  # noqa: BLE001 - the preset's limits then apply
        info = None
    served = Served(server, info)
    with _live_lock:
        _live[served.base_url] = (choice, speed)
    return served


def _must_see(choice: str) -> None:
    """ReplayError unless this session's person sees the saved run ``choice`` replays (a shipped
    transcript is everyone's)."""
    if choice.startswith(f"{PREFIX}run:") and not _history().exists(choice.removeprefix(f"{PREFIX}run:")):
        raise ReplayError(f"There is no recording {choice!r} to replay: choose one of the Replay entries.")


def serve(choice: str, speed: float) -> Served:
    """The running replay server of ``choice`` at ``speed`` (started on first use).
    ConfigError when ``choice`` names no recording (a typed id, a deleted run, a broken file)."""
    try:
        _must_see(choice)  # a server started for its person is cached for the process: check first
        return _server(choice, float(speed) if float(speed) in SPEEDS else 1.0)
    except ReplayError as exc:
        raise ConfigError(str(exc), hint="choose a Replay entry in the Model list") from exc


def choice_of(base_url: str) -> tuple[str, float] | None:
    """(choice, speed) of the replay server at ``base_url`` if it still runs in this process."""
    with _live_lock:
        return _live.get(base_url.rstrip("/"))
