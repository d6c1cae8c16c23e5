"""The wire: one HTTP request to an OpenAI-compatible server and what comes back.

Owns: SSE decoding (:mod:`.sse`), the HTTP client and model listing
(:mod:`.client`), one streamed or unstreamed answer read delta by delta
(:mod:`.stream`), the error tree and how server bodies map onto it
(:mod:`.errors`, :mod:`.error_map`), httpx at the boundary (:mod:`.boundary`),
where requests may go (:mod:`.guard`, :mod:`.pinning`, :mod:`.pool_transport`)
and secrets kept out of text and logs (:mod:`.redaction`).

Knows nothing of rounds, seams or continuation. May import: :mod:`core.types`,
:mod:`core.bounds`, the standard library, httpx and httpcore. Nothing above it.
"""
