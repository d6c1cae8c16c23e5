"""Coalescing HTTP/1.1 chunks: many small chunks in one read become one chunk.

A provider streaming token by token sends one HTTP chunk per token. A paced
batch read (:mod:`core.services.batch.pacing`) takes a dozen of them at once, but the
HTTP parser underneath httpx (h11) still handles each chunk as its own event,
through several generator layers — about half of a batch's CPU time. Chunk
boundaries carry no meaning in HTTP/1.1 (RFC 9112 §7.1: intermediaries may
re-chunk a body freely), so :class:`ChunkCoalescer` rewrites the bytes a read
returns: the response head passes through untouched, and every chunk of a
chunked body found in the read is merged into a single chunk. The body bytes,
their order and the end of the body are unchanged.

It follows one response per request (no pipelining, like httpcore): the
transport calls :meth:`ChunkCoalescer.request_sent` when it writes a request.
Bodies that are not chunked, and anything it does not understand (a malformed
size line, an informational response it cannot place), pass through as they
are, so the HTTP parser sees and reports them as it would have.
"""

from __future__ import annotations

import re

_HEAD_END = b"\r\n\r\n"
_CHUNKED = re.compile(rb"^transfer-encoding:[^\r\n]*\bchunked\b", re.IGNORECASE | re.MULTILINE)
_SIZE = re.compile(rb"[0-9A-Fa-f]+")
_MAX_LINE = 4096  # a chunk-size line longer than this is not ours to judge


class ChunkCoalescer:
    """Incremental re-framing of one connection's incoming bytes. See the module docstring."""

    HEAD, SIZE, DATA, DATA_END, PASS = range(5)

    def __init__(self) -> None:
        self._state = self.PASS
        self._buffer = b""  # unparsed bytes of a head or a size line
        self._left = 0  # bytes left in the current chunk (DATA) or of its CRLF (DATA_END)

    def request_sent(self) -> None:
        """A request went out: what comes next is a response head."""
        self._state, self._buffer, self._left = self.HEAD, b"", 0

    def flush(self) -> bytes:
        """The connection ended: whatever is held back, as it came (the parser judges it)."""
        held, self._buffer, self._state = self._buffer, b"", self.PASS
        return held

    def feed(self, data: bytes) -> bytes:
        """The bytes to hand to the HTTP parser for ``data`` (possibly b"" while a line is incomplete)."""
        if self._state == self.PASS:
            return data
        out: list[bytes] = []
        merged: list[bytes] = []
        data = self._buffer + data
        self._buffer = b""
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == self.HEAD:
                stop = data.find(_HEAD_END, pos)
                if stop < 0:
                    self._buffer = data[pos:]
                    pos = end
                    break
                head = data[pos : stop + 4]
                out.append(head)
                pos = stop + 4
                if head.startswith(b"HTTP/1.1 1") and not head.startswith(b"HTTP/1.1 101"):
                    continue  # an informational response: the real head follows
                self._state = self.SIZE if _CHUNKED.search(head) else self.PASS
            elif state == self.DATA:
                take = min(self._left, end - pos)
                merged.append(data[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state, self._left = self.DATA_END, 2
            elif state == self.DATA_END:
                take = min(self._left, end - pos)
                if data[pos : pos + take] != b"\r\n"[2 - self._left : 2 - self._left + take]:
                    break  # malformed: hand the rest over as it is
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = self.SIZE
            elif state == self.SIZE:
                stop = data.find(b"\r\n", pos)
                if stop < 0:
                    if end - pos > _MAX_LINE:
                        break
                    self._buffer = data[pos:]
                    pos = end
                    break
                match = _SIZE.match(data, pos, stop)
                if match is None:
                    break
                size = int(match.group(), 16)
                if size == 0:
                    break  # the last chunk (and trailers): passed through as they are
                pos = stop + 2
                self._state, self._left = self.DATA, size
            else:  # PASS
                break
        if merged:  # one chunk for everything this read brought (a chunk cut by the read goes on next time)
            body = b"".join(merged)
            out.append(b"%x\r\n%b\r\n" % (len(body), body))
        if pos < end:  # the last chunk and trailers, or bytes we do not understand: as they are
            out.append(data[pos:])
            self._state = self.PASS
        return b"".join(out)
