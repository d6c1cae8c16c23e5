"""The offline demo model: an OpenAI-compatible server that writes placeholder documents.

It needs no key and no network, and it is deterministic, so the app, the tests
and the benchmarks can exercise response continuation end to end. It is a demo,
not a language model: it always writes the same readable placeholder document
for the same prompt.

Starting it
-----------
In Python::

    from core.demo import start_demo_server, behaviour_url
    with start_demo_server(rate=0, usage="separate") as server:  # port 0 = any free port
        server.base_url                # "http://127.0.0.1:PORT/v1" (also .root_url, .host, .port)
        behaviour_url(server.base_url, prefill="ignored")  # one request's behaviours
    # leaving the block calls server.stop(): open streams end, connections close

``start_demo_server(host="127.0.0.1", port=0, *, rate=0.0, verbose=False, **defaults)``
serves from a daemon thread; ``defaults`` are behaviour values (below) for every
request, checked at once (``ValueError`` on an unknown key or a bad value).

From the shell: ``python -m core demo --port 8765 --rate 40 [--host H] [--verbose]
[--<behaviour> VALUE ...]`` (also ``python -m core.demo``). It prints
``Demo model listening on http://HOST:PORT/v1`` and serves until Ctrl-C.
``--rate`` is tokens per second per stream (default 40 on the command line,
0 = unthrottled, the default of ``start_demo_server``).

Endpoints (also under ``/v1/openai/...``, DeepInfra's path shape)
------------------------------------------------------------------
- ``POST /v1/chat/completions`` and ``POST /v1/completions``, streamed (SSE) or not.
- ``GET /v1/models``; ``GET /v1/models?filter=with_meta`` adds DeepInfra-style
  ``metadata: {context_length, max_tokens, pricing: {input_tokens, output_tokens}}``
  (USD per 1M tokens; made-up demo prices, nothing is billed); ``GET /v1/models/<id>``.
- ``GET /health`` (no auth).
- Every response carries ``x-request-id: req-demo-NNNNNN``; HTTP/1.1 keep-alive;
  JSON with ``Content-Length``; SSE as ``text/event-stream`` with chunked encoding,
  a first chunk ``delta: {"role": "assistant", "content": ""}``, then one chunk per
  token, a finish chunk (``delta: {}``, ``finish_reason`` "length" when
  ``max_tokens`` cut the answer, else "stop"), usage per the ``usage`` behaviour,
  and ``data: [DONE]``.

Models
------
| model         | context | USD per 1M in / out | notes                       |
|---------------|---------|---------------------|-----------------------------|
| demo          | 8192    | 0.10 / 0.40         |                             |
| demo-32k      | 32768   | 0.20 / 0.80         |                             |
| demo-reasoner | 32768   | 0.50 / 2.00         | reasons first, then answers |
| demo-1m       | 1048576 | 0.30 / 1.20         | a 1M-token answer in one run |

Output cap: 4096 tokens per request for every model (so a 1,000,000-token answer on
demo-1m takes ~245 continuation rounds, each re-sending the answer so far: up to ~6 MB
of prefill per request, read in linear time, see "Tokens and usage"). A larger ``max_tokens``
(or ``max_completion_tokens``) is lowered to 4096 silently; a missing one means
``min(4096, context - prompt_tokens)``. Then, if ``prompt_tokens + max_tokens >
context``, the request fails with HTTP 400 in the wording of the ``overflow``
behaviour (or is clamped, see below). ``max_tokens < 1`` is a 400.

What it writes
--------------
- ``demo_document(prompt)``: a placeholder document (title, headings, paragraphs,
  bulleted and numbered lists, tables, code blocks, a few non-ASCII words), from a
  random generator seeded with a SHA-256 of the prompt: identical in every process.
  The key is the LAST user message only (stripped; the system prompt and the model
  do not matter), so chat and ``/completions`` give the same document.
- Length: the first "<number> tokens|words" in the prompt ("Write 20000 tokens
  about X", "about 2k tokens", "a 300-word note", "1,500 words") gives exactly that
  many demo tokens (words count as tokens), at most 1,000,000; otherwise 1500.
- "Count from A to B", "count to B" or "the numbers from A to B" answers
  ``"A, A+1, …, B."`` (for the continuation probe; at most 1,000,000 numbers).
- A prompt starting with "Echo:" (any case) answers the rest of it verbatim,
  leading whitespace removed (so tests can make the model write given text).
- demo-reasoner first emits ``demo_reasoning(prompt)`` (60 to 100 tokens), then the document.
- Sampling parameters (temperature, top_p, seed, stop, n…) are accepted and ignored.

Tokens and usage
----------------
A demo token is ``\\s*\\S{1,12}``: leading whitespace plus up to 12 non-space
characters (longer words split; trailing whitespace at the very end is a token).
``count_tokens(text)`` counts them. Each SSE chunk carries exactly one token.
A long assistant message (4096 characters or more) that is the start of the document
answering the user message before it is counted off that document instead of being
tokenized again (``Document.prefix_tokens``: one compare and a bisection; the same
number), so every continuation round costs time linear in its prefill, not more.
``completion_tokens`` = tokens emitted (reasoning included; an echoed prefill is
not billed). ``prompt_tokens`` = for chat, the tokens of every message's text
content + 4 per message (``reasoning_content`` of assistant messages is ignored);
for ``/completions``, the tokens of the prompt. ``total_tokens`` is their sum;
demo-reasoner adds ``completion_tokens_details.reasoning_tokens``.

Continuation
------------
- Prefill: a trailing ``assistant`` message with content A (when the ``prefill``
  behaviour honours it) continues the document from ``len(A)``; a character offset
  inside a token emits the rest of that token first. If A is not a prefix of the
  document (an edit), it continues from where A departs, the end of the longest
  common prefix; when A departs there and then ends with the start of the document
  from that point (what the demo wrote after the edit), it goes on after that, so a
  run goes on round after round after an edit (``tokens.continue_at``). So N rounds
  of continuation reproduce the single-shot answer character for character.
- Instruction: if the last message is a user message containing "continue" (any
  case) right after an assistant message A, it continues the document from A but
  restarts 5 tokens before the end of A (an overlap to remove), whatever the
  prefill behaviour. No reasoning is emitted then.
- demo-reasoner: a prefill starting with ``<think>`` and without ``</think>``
  continues the reasoning from there, then writes the answer; a plain-content
  prefill continues the answer without reasoning. With ``reasoning=think`` (and on
  ``/completions``) the prefill is matched against the whole ``<think>\n…\n</think>\n\n``
  + answer text; whitespace right around the tags may differ.
- ``/completions``: the prompt is a rendered chat template + A. Assistant markers
  recognised: Llama 3 ``<|start_header_id|>assistant<|end_header_id|>``, ChatML/Qwen
  ``<|im_start|>assistant``, DeepSeek ``<｜Assistant｜>``, Mistral ``[/INST]`` and
  ``### Assistant:``. A is the text after the LAST marker (leading whitespace
  removed, used as-is otherwise: ``prefill`` and ``template`` do not apply); the key
  is the text after the last user marker (``…user<|end_header_id|>``,
  ``<|im_start|>user``, ``<｜User｜>``, ``[INST]``, ``### User:``) up to its end of
  turn. Unknown format: the whole prompt is the key, and it starts from the
  beginning. demo-reasoner writes ``<think>…</think>`` in the text here.

Behaviours
----------
Set per server (``start_demo_server(prefill="ignored", ...)``, CLI ``--prefill
ignored``) and per request by a path prefix that overrides them:
``http://host:port/x/<k>=<v>,<k>=<v>/v1/chat/completions``;
``behaviour_url(base_url, prefill="ignored", usage="absent")`` builds
``http://host:port/x/prefill=ignored,usage=absent/v1``. Unknown keys in a prefix
are ignored (a bad value of a known key is a 400). Defaults first:

- ``prefill``: ``continue`` | ``ignored`` (a trailing assistant message is a closed
  turn: the answer starts anew) | ``prefix`` (honoured only when the assistant
  message has ``"prefix": true``, else ignored) | ``echo`` (needs ``"prefix": true``
  too, like Mistral, and streams A back as one chunk before continuing).
- ``vllm``: ``off`` | ``required`` (a prefill is honoured only with
  ``continue_final_message: true`` and ``add_generation_prompt: false``; both true
  — ``add_generation_prompt`` defaults to true — is a 400, like vLLM).
- ``usage``: ``final`` (usage on the finish chunk, always) | ``separate`` (an extra
  chunk with empty ``choices`` after the finish chunk, only when
  ``stream_options.include_usage`` is true, like OpenAI) | ``absent`` (never, also
  not in non-streamed responses).
- ``overflow``: ``vllm`` | ``deepinfra`` | ``openrouter`` | ``llamacpp`` (a 400 with
  that server's wording and numbers; llama.cpp's carries ``type:
  exceed_context_size_error``, ``n_prompt_tokens``, ``n_ctx``) | ``clamp`` (lower
  ``max_tokens`` silently to ``context - prompt_tokens``; a prompt that alone fills
  the context is still a 400, in vLLM's wording).
- ``template``: ``trim`` (the prefill is right-stripped, like most chat templates,
  so a trailing space is regenerated) | ``keep``.
- ``reasoning`` (demo-reasoner only): ``field`` (``delta.reasoning_content``) |
  ``reasoning`` (``delta.reasoning``, OpenRouter) | ``think`` (``<think>…</think>``
  inside the content).
- ``auth``: ``open`` | ``key`` (``Authorization: Bearer demo-key`` required;
  ``demo-empty`` gets 402; a missing or other key gets 401). Applies to every
  ``/v1`` endpoint.
- ``drop``: ``0`` | ``N`` (close the connection without a finish chunk or
  ``[DONE]`` right after the Nth token, when the response has at least N tokens)
  | ``random`` (drop with probability ``drop_p``, default 0.3, after a random
  number of tokens; seeded by ``seed``, the prefix and the request's number).
- ``fail429``: ``0`` | ``N`` (the first N requests get 429 with ``Retry-After``
  (whole seconds, at least 1) and ``retry-after-ms`` from ``retry_after``, default 0.1 s).
- ``fail5xx``: ``0`` | ``N`` (the next N requests get 503, 500, 502, 503, … in
  turn; the 502 is an nginx-style HTML page, the others JSON).
- ``malformed``: ``0`` | ``N`` (after N tokens, one event whose data is not valid
  JSON; the stream then goes on normally).
- ``stall``: ``0`` | ``S`` (``: keep-alive`` comments for S seconds before the
  first event: one at once, then every min(1, S/5) s).
- ``silent``: ``0`` | ``S`` (nothing at all for S seconds after the headers).
- ``seed``: ``0`` | integer (for ``drop=random``).
- ``rate``: tokens per second per stream, ``0`` = unthrottled (server default from
  ``rate=`` / ``--rate``); tokens leave on a monotonic schedule, those already
  due go in one write. One pacer thread writes every throttled stream
  (``core.demo.pacer``), so hundreds of streams at once cost little CPU.
  Non-streamed responses wait ``tokens / rate`` in total.
- ``retry_after``: ``0.1`` | seconds announced by ``fail429`` (and chaos ``429``).
- ``cap``: ``4096`` | the output cap per request.
- ``chaos``: ``0`` | P (a fault campaign, ``core.demo.chaos``: each chat or
  completion request gets one random fault with probability P, drawn from
  ``chaos_seed``, the prefix and the request's number under it, so a sequence of
  requests on one prefix meets the same faults every time). The kinds:
  ``cut`` (the connection closes at a random byte of the stream, with no
  terminating chunk: inside a chunk-size line, inside a multi-byte UTF-8
  character, between two events or inside one; every cut but the first kind
  leaves a chunk frame short of its announced size) · ``429`` (with
  ``Retry-After`` and ``retry-after-ms`` from ``retry_after``) · ``429_bare`` (no
  retry header) · ``500`` · ``502`` (nginx HTML) · ``503`` · ``stall`` (at a
  random byte, nothing at all for ``chaos_stall`` seconds, then the rest) ·
  ``keepalive`` (at a random event boundary, ``: keep-alive`` comments for
  ``chaos_stall`` seconds, every min(0.1, chaos_stall/5) s, then the rest: not a
  fault for a client that counts comments as activity) · ``drip`` (from a random
  byte, the next 1,024 bytes in pieces of 1 to 8 bytes, one chunk frame each,
  ``chaos_drip`` seconds apart). Non-streamed requests only get the status kinds.
- ``chaos_seed``: ``0`` | integer.
- ``chaos_kinds``: ``all`` | kinds joined by ``+``, e.g. ``cut+429+stall``.
- ``chaos_stall``: ``0.5`` | seconds of a ``stall`` or a ``keepalive`` span (set it
  above the client's idle timeout).
- ``chaos_drip``: ``0.002`` | seconds between the pieces of a ``drip``.
- ``chaos_max``: ``3`` | faulty requests in a row on one prefix; the next one is
  clean, so a client with enough retries always finishes.
- ``k``: any value; ignored, but part of the prefix (see counters).

Fault counters ("the first N requests") count chat and completion requests per
distinct prefix string (server-wide when there is no prefix), so each test
should use its own prefix, e.g. ``k=<test name>``; 429s come first, then 5xx.
``drop``, ``malformed`` and keep-alive comments apply to streams;
``stall``/``silent`` delay non-streamed responses instead.

Faults injected are counted per server: ``GET /stats`` (no auth; summed over
every prefix) or ``GET /x/<prefix>/stats`` (one prefix), in Python
``DemoServer.fault_counts(prefix=None)``, give ``{"requests": chat and completion
requests, "faults": {kind: n}, "cuts": {place: n}, "abandoned": {kind: n},
"abandoned_silence_s": {kind: s}}``.
``faults`` counts the chaos kinds and the fixed faults (``429``, ``500``, ``502``,
``503`` from ``fail429``/``fail5xx``, ``drop``); ``cuts`` where chaos cuts fell
(``frame``, ``utf8``, ``boundary``, ``event``); ``abandoned`` the ``keepalive``
spans and ``drip`` windows during which the client hung up: a client that takes
comments or slow bytes for silence, or a server too starved to write in time
(``abandoned_silence_s``: the shortest, by kind, of those windows' longest gaps
between two writes; at or above the client's idle timeout, the server was silent).

Replay
------
``start_demo_server(replay=transcript, speed=1.0)`` (a transcript dict, or the path
of a file) and ``python -m core demo --replay FILE [--speed 2]`` (``--replay-run
RUN_ID``: a run from the history) also serve a recorded run as the model
``replay`` (and under the run's own model name when it is not a demo model's):
the recorded rounds, texts, finish reasons, usage and reasoning, at the recorded
time to first token and duration divided by ``speed`` (0 = no waiting). The
transcript is the JSON download of a run (``core/demo/transcripts/`` holds two
samples); a prefill that departs from the recording gets an empty answer with
``finish_reason: "stop"``. ``server.replay`` is the :class:`Replay`; the details,
and what each request gets, are in ``core.demo.replay``.

Errors are OpenAI-style ``{"error": {"message", "type", "param", "code"}}``
with the HTTP status: unknown model 404 "The model `X` does not exist";
body that is not JSON 400; missing or malformed fields 422.
"""

from __future__ import annotations

from pathlib import Path

from core.demo.behaviours import behaviour_url
from core.demo.document import demo_document, demo_reasoning
from core.demo.recording import Recording, ReplayError, load_transcript
from core.demo.replay import Replay
from core.demo.server import DemoServer, main, start_demo_server
from core.demo.tokens import count_tokens

TRANSCRIPTS = Path(__file__).with_name("transcripts")  # the sample transcripts to replay

__all__ = [
    "TRANSCRIPTS",
    "DemoServer",
    "Recording",
    "Replay",
    "ReplayError",
    "behaviour_url",
    "count_tokens",
    "demo_document",
    "demo_reasoning",
    "load_transcript",
    "main",
    "start_demo_server",
]
