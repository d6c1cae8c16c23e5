"""The chunk template (core.wire.chunks) decodes exactly what a full parse of every chunk does.

Differential: one ChunkDecoder with its template, one with it off, on the same streams of
chunks: varied shapes, escapes, lone surrogates, control characters, bytes spliced in,
duplicate and look-alike keys. Deltas, errors and the final state must be equal.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.wire.chunks import ChunkDecoder
from core.wire.errors import ContinuumError


def err(body):
    return ContinuumError(f"server error {body!r}")


def run(events, template: bool):
    dec = ChunkDecoder("http://x", err, template=template)
    out, exc = [], None
    batch = []
    try:
        for group in events:
            batch = []
            done = dec.decode(group, batch)
            out.append(list(batch))
            if done:
                break
    except ContinuumError as e:
        out.append(list(batch))
        exc = (type(e).__name__, str(e))
    return out, exc, dec.chunks, dec.finish_reason, dec.usage, dec.done


texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=6) | st.sampled_from(
    ['"', "\\", "\x00", "\ud83d", "\ud83d\ude00", "é", "\n", '", "x": "', 'a"b', "\x1f", ""]
)


def chunk(content, style):
    delta = {"content": content}
    if style == 1:
        delta = {"role": "assistant", "content": content}
    if style == 2:
        delta = {"content": content, "reasoning_content": None}
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    if style == 3:
        obj = {"choices": [{"index": 0, "text": content, "finish_reason": None}], "model": "m"}
    if style == 4:  # key order: content first
        obj = {"choices": [{"delta": {"content": content}, "index": 0}], "id": "x"}
    return json.dumps(obj, ensure_ascii=bool(len(content) % 2)).encode("utf-8", "surrogatepass")


mutations = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=4)),
)


def mutate(data, m):
    if m is None:
        return data
    at, junk = m
    at = at % (len(data) + 1)
    return data[:at] + junk + data[at:]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.tuples(texts, st.integers(0, 4), mutations, st.booleans()), min_size=1, max_size=12),
    st.integers(1, 5),
)
def test_the_template_decodes_what_a_full_parse_decodes(items, group):
    datas = []
    for content, style, m, raw in items:
        d = chunk(content, style)
        if raw:  # a hand-made variant: the content bytes spliced without encoding
            d = d.replace(
                json.dumps(content).encode("utf-8", "surrogatepass"),
                b'"' + content.encode("utf-8", "surrogatepass") + b'"',
                1,
            )
        datas.append(mutate(d, m))
    events = [datas[i : i + group] for i in range(0, len(datas), group)]
    assert run(events, True) == run(events, False)


def test_duplicate_and_look_alike_keys_never_take_the_template_wrongly():
    for d in [
        b'{"choices":[{"delta":{"content":"a","content":"b"}}]}',
        b'{"x":"\\"content\\": \\"","choices":[{"delta":{"content":"a"}}]}',
        b'{"content":"a","choices":[{"delta":{"content":"a"}}]}',
        b'{"choices":[{"delta":{"content":"a"}}],"content":"a"}',
    ]:
        seq = [[d, d.replace(b'"a"', b'"zz"'), d.replace(b'"b"', b'"q"'), d]]
        assert run(seq, True) == run(seq, False), d
