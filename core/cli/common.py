"""Pieces shared by the subcommands: argument types, targets, the progress line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from core.bounds import parse_number
from core.demo import start_demo_server
from core.services.keys import resolve_api_key
from core.services.providers import DEFAULT_PROVIDER, PROVIDERS, Provider, get_provider
from core.types import Delta, Event, Notice, Retrying, RoundFinished, RoundStarted
from core.wire.client import Timeouts
from core.wire.errors import ConfigError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
NORMAL_STOPS = frozenset({"finished", "max_rounds", "target_reached", "context_exhausted", "cost_limit"})


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message."""


# Ctrl+C, then what `timeout`, `kill`, systemd and `docker stop` send, then a closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
SignalHandler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def on_stop_signal(handler: SignalHandler) -> Iterator[None]:
    """While the block runs, every polite stop signal calls ``handler``, as Ctrl+C does.

    SIGTERM and SIGHUP stay ignored when the process was started ignoring them
    (``nohup``); SIGINT is always taken. Outside the main thread (where Python
    cannot handle signals) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def check_outputs(*outputs: tuple[str, Path | None], sends: bool = True) -> None:
    """Refuse an output that cannot be written (UsageError, exit 2), before anything is sent.

    ``outputs`` are ``(option, path)`` pairs; None is skipped. A file that does not
    exist yet is created and removed again: only the file system knows for sure
    (a read-only mount, permissions, a full quota). ``sends``: the command would
    have sent requests, so the message says none was.
    """
    for option, path in outputs:
        problem = None if path is None else _unwritable(path)
        if problem:
            raise UsageError(
                f"cannot write {option} {path}: {problem}" + ("; nothing was sent" if sends else "")
            )


def _unwritable(path: Path) -> str | None:
    if path.is_dir():
        return "it is a directory (give a file name)"
    if path.exists() and not path.is_file():
        return None  # /dev/stdout, a named pipe: opening it to check could block
    folder = path.parent
    if not folder.is_dir():
        return (
            f"the folder {folder} does not exist (create it first)"
            if not folder.exists()
            else f"{folder} is not a folder"
        )
    try:
        if path.exists():
            with path.open("ab"):
                pass
        else:
            with path.open("xb"):
                pass
            path.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def number(name: str) -> Callable[[str], Any]:
    """An argparse type for parameter ``name``, checked by :mod:`core.continuation.validation` (one set of rules)."""

    def parse(text: str) -> int | float:
        try:
            return parse_number(name, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its own messages
    return parse


def add_timeout_arguments(parser: argparse.ArgumentParser) -> None:
    """``--connect-timeout``, ``--idle-timeout``, ``--round-timeout`` (seconds; defaults from Timeouts)."""
    default = Timeouts()
    for name, what in (
        ("connect", "to open a connection"),
        ("idle", "of silence between bytes of an answer (keep-alive comments count as activity)"),
        ("round", "for one whole round; past it the round ends and a recovery round continues"),
    ):
        parser.add_argument(
            f"--{name}-timeout",
            type=number(f"{name}_timeout"),
            metavar="S",
            help=f"seconds {what} (default {getattr(default, name):g})",
        )


def timeouts_from_args(args: argparse.Namespace) -> Timeouts:
    given = {
        name: getattr(args, f"{name}_timeout")
        for name in ("connect", "idle", "round")
        if getattr(args, f"{name}_timeout", None) is not None
    }
    return Timeouts(**given)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


temperature = number("temperature")


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def add_target_arguments(
    parser: argparse.ArgumentParser, *, provider_default: str | None = DEFAULT_PROVIDER
) -> None:
    parser.add_argument(
        "--provider",
        default=provider_default,
        choices=sorted(PROVIDERS),
        help=f"provider preset (default: {provider_default or 'the run’s'}; 'demo' is the offline demo model)",
    )
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: the provider's)")
    parser.add_argument("--model", help="model id (default: the provider's default model)")
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the key (default: the provider's); never the key itself",
    )
    parser.add_argument(
        "--demo-rate",
        type=non_negative_float,
        default=0.0,
        help="with --provider demo: tokens per second of the in-process demo model (0 = unthrottled)",
    )


@dataclass
class Target:
    provider: Provider
    base_url: str
    model: str
    api_key: str | None


@contextlib.contextmanager
def open_target(
    provider_id: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key_env: str | None = None,
    demo_rate: float = 0.0,
    demo_path: str | None = None,
    need_model: bool = True,
) -> Iterator[Target]:
    """Resolve provider, base URL, model and key; start the in-process demo model when chosen.

    ``demo_path`` keeps a demo behaviour prefix (``/x/k=v/v1``) when a demo run is resumed
    on a freshly started demo server. ``need_model=False`` (listing models) accepts no
    model. A key variable named by ``api_key_env`` must be set: a run never goes out
    without the key it was told to use.
    """
    provider = get_provider(provider_id)
    model = model or provider.default_model or ""
    if not model and need_model:
        raise UsageError(f"--model is required for the {provider.label} provider")
    if api_key_env and not os.environ.get(api_key_env, "").strip():
        raise ConfigError(
            f"The environment variable {api_key_env} (named by --api-key-env) is not set or is empty.",
            hint=f"export {api_key_env}=… with the key, or leave out --api-key-env",
        )
    api_key = resolve_api_key(provider.id, api_key_env=api_key_env)
    if provider.needs_key and not api_key:
        raise ConfigError(f"No API key found for {provider.label}.", hint=provider.key_hint())
    if provider.is_demo and not base_url:
        with start_demo_server(rate=demo_rate) as server:
            url = server.base_url
            if demo_path and demo_path.rstrip("/") not in ("", "/v1"):
                url = server.root_url.rstrip("/") + "/" + demo_path.strip("/")
            yield Target(provider, url, model, api_key)
        return
    base_url = base_url or provider.base_url
    if not base_url:
        raise UsageError(f"--base-url is required for the {provider.label} provider")
    yield Target(provider, base_url, model, api_key)


def url_path(url: str) -> str:
    return urlsplit(url).path


class Progress:
    """One status line on stderr (redrawn at most 10 times a second on a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr, window: int | None = None, enabled: bool = True) -> None:
        self.stream = stream
        self.window = window
        self.enabled = enabled
        self.tty = stream.isatty()
        self.round = 0
        self.round_chars = 0
        self.tokens = 0
        self.context = 0
        self.last_draw = 0.0

    def handle(self, event: Event) -> None:
        if not self.enabled:
            return
        if isinstance(event, RoundStarted):
            self.round, self.round_chars = event.index, 0
            self.draw(force=True)
        elif isinstance(event, Delta):
            self.round_chars += len(event.text)
            self.draw()
        elif isinstance(event, RoundFinished):
            r = event.round
            self.tokens += r.completion_tokens
            self.context = r.prompt_tokens + r.completion_tokens
            mark = "~" if r.tokens_estimated else ""
            window = f", context {self.context:,}/{self.window:,}" if self.window else ""
            error = f", error: {r.error}" if r.error else ""
            self.line(
                f"round {r.index}: {mark}{r.completion_tokens:,} tokens, "
                f"finish={r.finish_reason or 'none'}, {r.duration_s:.1f} s{window}{error}"
            )
        elif isinstance(event, Retrying):
            self.line(f"retrying in {event.wait:.1f} s ({event.reason})")
        elif isinstance(event, Notice):
            self.line(f"note: {event.message}")

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tty or (not force and now - self.last_draw < 0.1):
            return
        self.last_draw = now
        window = f" · context {self.context:,}/{self.window:,}" if self.window else ""
        self.stream.write(
            f"\r\x1b[Kround {self.round} · {self.tokens:,} tokens so far · "
            f"{self.round_chars:,} chars this round{window}"
        )
        self.stream.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()
