"""The continuation: a long answer from many capped requests.

Owns: how the partial answer is sent back (:mod:`.strategies`, :mod:`.templates`),
the seams between rounds (:mod:`.seams`), reasoning text (:mod:`.reasoning`), the
one token estimate, context budget and cost (:mod:`.budget`), one round's request
and outcome (:mod:`.rounds`), the loop with its retries (:mod:`.engine`), whether a
server continues at all (:mod:`.probe`) and every run parameter checked once
(:mod:`.validation`).

May import: :mod:`core.types`, :mod:`core.bounds` and :mod:`core.wire`. Never
the services, the CLI, the demo model or Streamlit.
"""
