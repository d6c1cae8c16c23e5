"""The SSE decoder's fast path (whole reads of ``data:`` lines) decodes what the reference does."""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.wire.sse import SSEDecoder
from tests.test_props_sse import Decoded, reference

pieces = st.sampled_from(
    [
        b'data: {"a":1}\n\n',
        b"data: x\n\n",
        b"data: \n\n",
        b"data:y\n\n",
        b": ping\n\n",
        b"event: e\n",
        b"id: 3\n",
        b"retry: 5\n",
        b"data: a\ndata: b\n\n",
        b"\n",
        b"\n\n",
        b"data: z\n",
        b"data: \xff\n\n",
        b"data: [DONE]\n\n",
        b"\xef\xbb\xbf",
    ]
)


def decode(chunks):
    d = SSEDecoder()
    ev = []
    for c in chunks:
        ev += d.feed(c)
    ev += d.close()
    return Decoded(ev, d.comments, d.discarded)


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(pieces, max_size=25), st.lists(st.integers(0, 400), max_size=6))
def test_reads_of_data_lines_decode_as_the_reference(parts, cuts):
    body = b"".join(parts)
    bounds = [0, *sorted(min(c, len(body)) for c in cuts), len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(chunks) == reference(body)
