"""One batch item's run, opened for recording: resumed from the store, or new and linked first;
a worker thread's HTTP transport.

Shared by the in-process :class:`~core.services.batch.runner.BatchRunner` and the batch
workers (:mod:`core.services.batch.worker`): an item whose run exists continues that run
(``engine.run(..., resume=store.load(run_id))``, as the Runs page's resume does); an item
without one gets a new run id, linked to the item before the run row is written. An item whose
run raised an unexpected exception ends in error (:func:`end_item_run_in_error`).
"""

from __future__ import annotations

import ssl
import time
import uuid
from typing import cast

from core.services.batch.limiter import AdaptiveLimiter
from core.services.batch.pacing import paced_transport
from core.services.batch.transport import LimitedTransport
from core.services.batch.writer import WriteBehindStore
from core.services.store import Batches, Recorder, Store
from core.types import ErrorInfo, RunResult, RunSpec
from core.wire import pinning


def limited_transport(
    base_url: str, limiter: AdaptiveLimiter, ssl_context: ssl.SSLContext, read_interval: float
) -> LimitedTransport:
    """One worker thread's transport to ``base_url``: checked addresses only, paced reads, and a
    slot of the shared ``limiter`` held by every request."""
    network = pinning.checked_network(base_url)  # shared server: checked addresses only
    paced = paced_transport(ssl_context, read_interval, network=network)
    return LimitedTransport(limiter, pinning.RefusalsAsErrors(paced))


def open_item_run(
    writer: WriteBehindStore,
    batch_id: str,
    position: int,
    run_id: str | None,
    spec: RunSpec,
    *,
    flush_interval: float,
) -> tuple[Recorder, RunResult | None, str]:
    """The item's recorder, its stored run to resume (None: a new run), and the run's id."""
    store = writer.store
    writes = cast(Store, writer)  # the Store methods a Recorder calls, written behind
    if run_id is not None and store.exists(run_id):
        result = store.load(run_id)
        return Recorder(writes, resume=result, flush_interval=flush_interval), result, run_id
    run_id = str(uuid.uuid4())
    writer.submit(Batches(store).link, batch_id, position, run_id)  # linked first
    writer.create_run(spec, run_id=run_id, batch_id=batch_id)
    return Recorder(writes, run_id=run_id, flush_interval=flush_interval), None, run_id


def end_item_run_in_error(
    writer: WriteBehindStore,
    batch_id: str,
    position: int,
    run_id: str | None,
    spec: RunSpec,
    error: ErrorInfo,
) -> None:
    """Queue the end of the item's run in ``error``, behind its other writes: its stored text is
    kept; an item without a stored run gets one (``spec``, linked first) so the batch counts it failed."""
    writer.submit(_end_in_error, writer.store, batch_id, position, run_id, spec, error)


def _end_in_error(
    store: Store, batch_id: str, position: int, run_id: str | None, spec: RunSpec, error: ErrorInfo
) -> None:
    if run_id is not None and store.exists(run_id):
        spec = store.load(run_id).spec
    else:
        run_id = str(uuid.uuid4())
        Batches(store).link(batch_id, position, run_id)
        store.create_run(spec, run_id=run_id, batch_id=batch_id)
    store.finish_run(
        run_id, spec=spec, status="error", stop_reason="error", error=error, finished_at=time.time()
    )
