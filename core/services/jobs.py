"""Background runs: the process's jobs, one worker thread per run, recorded as they stream.

A page never runs the engine itself: it asks the process-wide :class:`JobManager`
to :meth:`~JobManager.start` a :class:`~core.services.job.Job`, keeps the job's id (in
the session and in the URL), and polls :meth:`Job.snapshot` / :meth:`Job.wait`
(:mod:`core.services.job` folds the engine's events into those snapshots).
:func:`recording_runner` makes every run a manager starts also saved to the history.
Job ids are unguessable (``secrets.token_urlsafe``): holding the id is what lets a
session see a job. Nothing here imports Streamlit.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from core.continuation import engine
from core.continuation.validation import validate_spec
from core.services.job import Job, Runner
from core.services.snapshot import Gauge, JobStatus, LiveRound, Snapshot
from core.services.store import Recorder
from core.types import Event, RunResult, RunSpec

if TYPE_CHECKING:
    from core.services.store import Store
    from core.wire.client import Timeouts

log = logging.getLogger(__name__)

__all__ = ["Gauge", "Job", "JobManager", "JobStatus", "LiveRound", "Runner", "Snapshot", "recording_runner"]


def _default_runner() -> Runner:
    return engine.run


def recording_runner(store: Store, runner: Runner | None = None) -> Runner:
    """``runner`` (default: the engine's ``run``) whose events a store Recorder also saves.

    ``store`` is a :class:`core.services.store.Store`; a database problem never stops the
    run (the Recorder logs it). A resumed run extends its stored run.
    """

    def run(spec: RunSpec, **kwargs: Any) -> Iterator[Event]:
        events = (runner or _default_runner())(spec, **kwargs)
        recorder = Recorder(store, resume=kwargs.get("resume"), autoflush=True)
        return recorder.record(events)

    return run


class JobManager:
    """Owns every job of the process. Thread-safe; hold one per process (``st.cache_resource``).

    ``runner`` is the engine's ``run`` (or anything with its signature);
    finished jobs are dropped after ``keep_s`` seconds or past ``keep`` of them.
    ``on_finish`` hooks get each finished :class:`RunResult` (e.g. to save it),
    called from the worker thread.
    """

    def __init__(self, runner: Runner | None = None, *, keep: int = 200, keep_s: float = 6 * 3600) -> None:
        self._runner = runner
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.keep = keep
        self.keep_s = keep_s
        self.on_finish: list[Callable[[RunResult], None]] = []

    def start(
        self,
        spec: RunSpec,
        *,
        api_key: str | None = None,
        resume: RunResult | None = None,
        timeouts: Timeouts | None = None,
    ) -> Job:
        """Start ``spec`` in a new worker thread; returns at once.

        Raises :class:`~core.continuation.validation.Invalid` (a ConfigError: no job, nothing
        sent) when :func:`core.continuation.validation.validate_spec` refuses the spec; the engine
        gets the proof (``checked``) and does not check again. ``timeouts`` go to the engine's
        client (default: :class:`core.wire.client.Timeouts`).
        """
        checked = validate_spec(spec)
        runner = self._runner or _default_runner()
        job = Job(secrets.token_urlsafe(18), spec, resume=resume)
        job.timeouts = timeouts
        with self._lock:
            self._prune_locked()
            self._jobs[job.id] = job

        def work() -> None:
            job._run(runner, api_key, resume, timeouts, checked)
            result = job.snapshot().result
            for hook in list(self.on_finish):
                if result is None:
                    break
                try:
                    hook(result)
                except Exception:
                    log.exception("on_finish hook failed for run %s", job.id)

        thread = threading.Thread(target=work, name=f"continuum-job-{job.id[:6]}", daemon=True)
        job._thread = thread
        thread.start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, or None (unknown, expired, or no id)."""
        if not job_id:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if not j.done]

    def stop_all(self, timeout: float = 5.0) -> None:
        for job in self.running():
            job.stop()
        for job in self.running():
            job.join(timeout)

    def _prune_locked(self) -> None:
        now = time.time()
        finished = sorted(
            (j for j in self._jobs.values() if j.done and j.finished_at is not None),
            key=lambda j: j.finished_at or 0.0,
        )
        for job in finished:
            if now - (job.finished_at or now) > self.keep_s:
                del self._jobs[job.id]
        finished = [j for j in finished if j.id in self._jobs]
        excess = len(self._jobs) - self.keep
        for job in finished[: max(0, excess)]:
            del self._jobs[job.id]
