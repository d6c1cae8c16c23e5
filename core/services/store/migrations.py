"""The schema, as an append-only list of named migrations.

Never edit or reorder a migration once it has shipped: add a new one. A test
(``tests/test_store_migrations.py``) opens a database made by the first
migration only (``tests/fixtures/continuum-v1.sqlite3``) and checks it upgrades
without loss, and that the first migration still builds exactly that schema.

Column order matters in ``rounds``: SQLite stores a row's columns in order and
spills long values into overflow pages, so the small columns come first and
``text`` / ``reasoning`` last; totals (``SUM(prompt_tokens)`` …) then never read
the text of a long run.
"""

from __future__ import annotations

from .db import Migration
from .search import add_search_text

RUNS_AND_ROUNDS = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    title TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    base_url TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    strategy TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    stop_reason TEXT,
    error_json TEXT,
    rounds INTEGER NOT NULL DEFAULT 0,
    prompt_tokens_billed INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    tokens_estimated INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    characters INTEGER NOT NULL DEFAULT 0,
    batch_id TEXT,
    owner_host TEXT,
    owner_pid INTEGER,
    owner_started TEXT,
    heartbeat_at REAL,
    spec_json TEXT NOT NULL
);

CREATE TABLE rounds (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    live INTEGER NOT NULL DEFAULT 0,
    strategy TEXT NOT NULL DEFAULT '',
    max_tokens INTEGER NOT NULL DEFAULT 0,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    prompt_estimated INTEGER NOT NULL DEFAULT 0,
    completion_estimated INTEGER NOT NULL DEFAULT 0,
    ttft_s REAL,
    duration_s REAL NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    recovery INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cost REAL,
    started_at REAL NOT NULL DEFAULT 0,
    characters INTEGER NOT NULL DEFAULT 0,
    reasoning_characters INTEGER NOT NULL DEFAULT 0,
    held_back TEXT NOT NULL DEFAULT '',
    seam_flags_json TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL DEFAULT '',
    reasoning TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, idx)
);
"""

RUN_LIST_INDEXES = """
CREATE INDEX runs_by_created ON runs (created_at DESC);
CREATE INDEX runs_by_status ON runs (status, created_at DESC);
CREATE INDEX runs_by_provider_model ON runs (provider, model, created_at DESC);
CREATE INDEX runs_by_batch ON runs (batch_id) WHERE batch_id IS NOT NULL;
"""

# Round fields added to core.types after this schema land here as JSON, so a
# newer engine's rounds survive without a migration per field.
ROUND_EXTRA = """
ALTER TABLE rounds ADD COLUMN extra_json TEXT NOT NULL DEFAULT '{}';
"""

# Batches (core.services.batch): a batch's shared settings and its items, each item linked
# to the run that answers it (runs.batch_id links back). ``run_id`` has no
# foreign key: the item is linked before its run row is written, and a run
# deleted from the history simply makes its item "not started" again.
BATCHES = """
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    source_sha256 TEXT NOT NULL DEFAULT '',
    concurrency INTEGER NOT NULL DEFAULT 8,
    settings_json TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE batch_items (
    batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    run_id TEXT,
    item_json TEXT NOT NULL,
    PRIMARY KEY (batch_id, position),
    UNIQUE (batch_id, item_id)
);

CREATE INDEX batches_by_created ON batches (created_at DESC);
CREATE INDEX batch_items_by_run ON batch_items (run_id) WHERE run_id IS NOT NULL;
"""

# Steering (core.services.steering): runs of one conversation share a thread (a follow-up names
# the run it follows), and the user's edits between rounds are kept in order, each with the
# whole answer as it stood before it (the text of the rounds it took over).
STEERING = """
ALTER TABLE runs ADD COLUMN thread_id TEXT;
ALTER TABLE runs ADD COLUMN parent_id TEXT;
CREATE INDEX runs_by_thread ON runs (thread_id, created_at) WHERE thread_id IS NOT NULL;

CREATE TABLE edits (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    after_round INTEGER NOT NULL,
    at INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    added INTEGER NOT NULL,
    made_at REAL NOT NULL,
    inserted TEXT NOT NULL,
    text_before TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""

# Where a run came from: "" for the app, the command line and batches (as before), "api" for a
# request to ``python -m core serve`` (core.serve). Plain SQL, the same on every database.
RUN_SOURCE = """
ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT '';
"""

# Batch workers (core.services.batch.worker, ``python -m core batch-worker`` on any host): a batch
# handed to workers (``batches.workers`` = 1) has its items taken one by one; an item taken is
# stamped with its worker (host, pid, process start: as a run's owner) and the worker's
# heartbeat, so an item whose worker died can be taken again (core.services.store.claims).
# ``ended`` = 1 once a worker's run of the item has ended: the items left are found through a
# partial index, not by reading every item's run (a batch of 100,000 items stays quick to take from).
BATCH_CLAIMS = """
ALTER TABLE batches ADD COLUMN workers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batch_items ADD COLUMN claim_host TEXT;
ALTER TABLE batch_items ADD COLUMN claim_pid INTEGER;
ALTER TABLE batch_items ADD COLUMN claim_started TEXT;
ALTER TABLE batch_items ADD COLUMN claimed_at REAL;
ALTER TABLE batch_items ADD COLUMN claim_beat REAL;
ALTER TABLE batch_items ADD COLUMN ended INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batch_items_by_claim ON batch_items (claim_host, claim_pid) WHERE claim_host IS NOT NULL;
CREATE INDEX batch_items_open ON batch_items (batch_id, position) WHERE ended = 0;
"""

# People (issue #14): a run and a batch belong to the person who started them (``person``: the
# identity provider's issuer and subject, see core.services.people; NULL: nobody — the command
# line, the endpoint, or a server without sign-in), and a run can be shared with the team.
# ``person_name``: what the person was called when they started it (their ID token's name, see
# core.services.people.display_name), so the team reads who shared a run; never an address or a token.
OWNERS = """
ALTER TABLE runs ADD COLUMN person TEXT;
ALTER TABLE runs ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN person_name TEXT;
ALTER TABLE batches ADD COLUMN person TEXT;
ALTER TABLE batches ADD COLUMN person_name TEXT;
CREATE INDEX runs_by_person ON runs (person, created_at DESC);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_runs_and_rounds", RUNS_AND_ROUNDS),
    Migration("0002_run_list_indexes", RUN_LIST_INDEXES),
    Migration("0003_round_extra_json", ROUND_EXTRA),
    Migration("0004_batches", BATCHES),
    Migration("0005_threads_and_edits", STEERING),
    Migration("0006_run_source", RUN_SOURCE),
    Migration("0007_batch_claims", BATCH_CLAIMS),
    Migration("0008_owners", OWNERS),
    Migration("0009_search_fold", add_search_text),  # search text folded by Python (.search)
)
