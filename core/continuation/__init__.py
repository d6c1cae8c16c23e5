"""The continuation: a long answer from many capped requests.

Owns:

- how the partial answer is sent back: :mod:`.strategies` (one class per strategy),
  :mod:`.templates` (chat templates for the completions strategy);
- the seams between rounds: :mod:`.seams` (the text checks), :mod:`.seamcheck` (a closed
  round's seam checked, and the temperature-0 verification); :mod:`.reasoning` (``<think>``);
- the numbers: :mod:`.budget` (the one token estimate, request size, round budget and cost
  formula), :mod:`.ledger` (tokens, cost and context across rounds);
- the loop: :mod:`.planning` (the next round's request), :mod:`.rounds` (one round on the
  wire, with retries), :mod:`.reader` (a round's deltas become events), :mod:`.engine`
  (the loop, its limits and stops);
- :mod:`.probe` (does a server continue at all?) and :mod:`.validation` (every run
  parameter checked once, where the engine starts).

May import: :mod:`core.types`, :mod:`core.bounds` and :mod:`core.wire`. Never the services,
the CLI, the demo model or Streamlit.
"""
