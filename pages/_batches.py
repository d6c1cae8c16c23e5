"""The batch behind the Batch page: its runners, the batch on screen, the rows given, start, stop, resume,
handing a batch to batch workers and taking it back.

UI glue only (batches themselves are ``core.services.batch``, stored with
``core.services.store.Batches``). The runners live in one
:class:`~core.services.batch.BatchManager` per process (``st.cache_resource``),
so a batch goes on across reruns and reloads; the batch on screen is in the
session and in the URL (``?batch=<id>``). The actions are button callbacks:
what they have to say waits in the session for the next run (:func:`flash`).
"""

from __future__ import annotations

import streamlit as st

from core.services.batch import (
    DEFAULT_CONCURRENCY,
    BatchManager,
    BatchRunner,
    InputError,
    ParsedInput,
    check_items,
    create_batch,
    parse_items,
)
from core.services.batch.specs import settings_from_dict
from core.services.providers import Provider, get_provider
from core.services.store import Batches
from core.services.store.claims import Claims
from core.types import RunSpec
from core.wire.errors import ContinuumError
from pages import _common as common
from pages._history import history
from pages._timeouts import session_timeouts

BATCH_PARAM = "batch"  # the URL query parameter holding the batch on screen
FLASH_KEY = "batch_flash"  # session state: (kind, text) to show on the next run

EXAMPLE = "\n".join(
    f'{{"id": "{slug}", "prompt": "Write {tokens} tokens about {topic}, with headings."}}'
    for slug, tokens, topic in (
        ("lighthouses", 1200, "the history of lighthouses"),
        ("tides", 900, "how tides work"),
        ("paper", 1500, "the invention of paper"),
        ("bees", 800, "how honey bees communicate"),
        ("maps", 1000, "the first world maps"),
        ("glass", 700, "how glass is made"),
        ("clocks", 1100, "mechanical clocks"),
        ("salt", 600, "the salt trade"),
    )
)


# ---------------------------------------------------------------- process-wide


@st.cache_resource(show_spinner=False)
def batch_manager() -> BatchManager:
    """The batch runners of this Streamlit process (they outlive reruns and reloads)."""
    return BatchManager()


# ---------------------------------------------------------------- session


def flash(kind: str, text: str) -> None:
    """Show ``text`` with ``st.<kind>`` (error, warning…) on the next run of the page."""
    st.session_state[FLASH_KEY] = (kind, text)


def current_batch() -> str | None:
    """The batch on screen (session, else URL), if it exists in the history."""
    batch_id = st.session_state.get("batch_id") or st.query_params.get(BATCH_PARAM)
    if not batch_id:
        return None
    try:
        Batches(history()).get(batch_id)
    except ContinuumError:
        st.session_state.pop("batch_id", None)
        return None
    st.session_state["batch_id"] = batch_id
    return str(batch_id)


def show_batch(batch_id: str | None) -> None:
    """Put ``batch_id`` on screen (None: the new-batch form)."""
    if batch_id:
        st.session_state["batch_id"] = batch_id
        st.query_params[BATCH_PARAM] = batch_id
    else:
        st.session_state.pop("batch_id", None)
        if BATCH_PARAM in st.query_params:
            del st.query_params[BATCH_PARAM]


def read_input() -> tuple[ParsedInput | None, bytes, str]:
    """The parsed input (uploaded file, else pasted rows), its bytes and its name."""
    upload = st.session_state.get("batch_file")
    if upload is not None:
        data, name = upload.getvalue(), upload.name
    else:
        text = str(st.session_state.get("batch_text") or "")
        data, name = text.encode("utf-8"), "pasted rows"
    if not data.strip():
        return None, data, name
    return parse_items(data, None if upload is None else name), data, name


# ---------------------------------------------------------------- actions


def use_example() -> None:
    st.session_state["batch_text"] = EXAMPLE


def _form_settings(p: Provider) -> RunSpec:
    """The settings every row starts from: the provider's, with the batch form's limits."""
    state = st.session_state
    form = common.RunForm(
        prompt="",
        model=common.prompting_model_for(p),
        strategy=str(state.get(f"batch_strategy_{p.id}") or p.strategy),
        max_tokens=int(state.get("batch_max_tokens") or 1024),
        max_rounds=int(state.get("batch_max_rounds") or 20),
        target_tokens=int(state.get("batch_target_tokens") or 0),
        temperature=float(state.get("batch_temperature") or 0.0),
    )
    settings = common.build_spec(p, form)
    system = str(state.get("batch_system") or "").strip()
    settings.messages = [{"role": "system", "content": system}] if system else []
    return settings


def start_batch() -> None:
    """Create a batch from the rows given and the form's settings, start it and show it."""
    try:
        parsed, data, name = read_input()
    except InputError as exc:
        flash("error", str(exc))
        return
    if parsed is None or not parsed.items:
        flash("warning", "Add prompts first: upload a CSV or JSONL file, or paste rows.")
        return
    p = common.provider()
    key, _ = common.key_for(p.id)
    to_workers = bool(st.session_state.get("batch_to_workers"))
    if p.needs_key and not key and not to_workers:  # workers use their own keys
        flash("error", f"No API key for {p.label}: {p.key_hint()}.")
        return
    settings = _form_settings(p)
    if not settings.base_url:
        flash("error", f"{p.label} needs a base URL: set it in Settings.")
        return
    items, problems = check_items(parsed.items, settings)
    if not items:
        flash("error", "No row can run with these settings: " + "; ".join(str(e) for e in problems[:3]))
        return
    if problems:
        flash("warning", f"{len(problems)} problem(s) skipped: " + "; ".join(str(e) for e in problems[:3]))
    store = history()
    batch_id = create_batch(
        store,
        items,
        settings,
        title=name,
        source=name,
        source_data=data,
        concurrency=int(st.session_state.get("batch_concurrency") or DEFAULT_CONCURRENCY),
    )
    if to_workers:
        Claims(store).hand_over(batch_id)
    else:
        try:
            batch_manager().start(BatchRunner(store, batch_id, api_key=key, timeouts=session_timeouts()))
        except ContinuumError as exc:
            flash("error", str(exc))
    show_batch(batch_id)


def stop_batch(batch_id: str) -> None:
    batch_manager().stop(batch_id)


def hand_to_workers(batch_id: str, workers: bool = True) -> None:
    """Give the batch to batch workers (``python -m core batch-worker``), or take it back from them."""
    Claims(history()).hand_over(batch_id, workers)


def resume_batch(batch_id: str) -> None:
    """Start the batch's runner again with its stored settings (and this session's key)."""
    store = history()
    settings = settings_from_dict(Batches(store).get(batch_id).settings)
    p = get_provider(settings.provider)
    if p.is_demo:
        settings.base_url = common.base_url_for(p)  # this process's demo model
    key, _ = common.key_for(p.id, base_url=settings.base_url)  # a shared server's key: its own URL only
    if p.needs_key and not key:
        flash("error", f"No API key for {p.label}: {p.key_hint()}.")
        return
    try:
        batch_manager().start(
            BatchRunner(store, batch_id, api_key=key, settings=settings, timeouts=session_timeouts())
        )
    except ContinuumError as exc:
        flash("error", str(exc))
