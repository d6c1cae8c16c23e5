"""The wire: one HTTP request to an OpenAI-compatible server and what comes back.

Owns:

- bytes to events to deltas: :mod:`.sse` (server-sent events), :mod:`.chunks` (a chunk's
  JSON to deltas, with the content-only fast path), :mod:`.stream` (one streamed or
  unstreamed answer, abortable, with idle and round timeouts);
- the client: :mod:`.client` (requests, model listing), :mod:`.body` (a request's JSON
  body, encoded once; long strings a slice at a time), :mod:`.boundary` (httpx's
  exceptions and odd responses become ours), :mod:`.pool_transport` (httpx's transport
  API over an httpcore pool; one TLS context per process);
- the error tree: :mod:`.errors`, and how a server's status and body map onto it:
  :mod:`.error_map`, :mod:`.error_body`, :mod:`.overflow` (context-window wordings);
- where requests may go: :mod:`.guard` (allow-list, shared mode, trusted origins),
  :mod:`.allow_list`, :mod:`.addresses` (internal addresses), :mod:`.pinning`
  (connect to the addresses that were checked);
- secrets out of text and library logs: :mod:`.redaction`.

Knows nothing of rounds, seams or continuation. May import: :mod:`core.types`,
:mod:`core.bounds`, the standard library, httpx and httpcore. Nothing above it.
"""
