"""The services that front ends share: the Studio, the command line and batches.

Owns: one RunSpec from provider + model + overrides (:mod:`.specs`), the
provider presets (:mod:`.providers`), where keys come from (:mod:`.keys`), who may
use a shared app (:mod:`.access`), background runs and their snapshots
(:mod:`.jobs`, :mod:`.snapshot`), inspecting seams (:mod:`.inspect`), exports
(:mod:`.export`), the SQLite history (:mod:`.store`) and batches (:mod:`.batch`).

May import: :mod:`core.types`, :mod:`core.bounds`, :mod:`core.wire` and
:mod:`core.continuation`. Never the CLI, the demo model or Streamlit.
"""
