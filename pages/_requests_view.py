"""The Requests tab of Inspect: one round's request as it was sent, and the same request as curl.

Nothing here is stored: :mod:`core.services.round_requests` rebuilds the request from the
run (the conversation, the answer so far as sent, the round's ``max_tokens``). One round
is drawn at a time: every body re-sends the whole answer so far, so all of them at once
would grow with the square of the answer.
"""

from __future__ import annotations

import streamlit as st

from core.services import inspect
from core.services import round_requests as requests
from core.services.export import download_name
from core.types import RunResult
from core.wire.errors import ContinuumError
from pages._blocks import inert, inert_code

BODY_HEAD, BODY_TAIL = 400, 1200  # characters kept at the ends of a long string of the body shown
BODY_HEIGHT = 420  # pixels; the block scrolls
CURL_INLINE_LIMIT = 200_000  # bytes of body pasted into the command; a longer one is read from a file


def _round_label(result: RunResult, index: int) -> str:
    rnd = result.rounds[index - 1]
    parts = [f"Round {index}", rnd.finish_reason or "no finish reason", f"{len(rnd.text):,} characters"]
    if rnd.retries:
        parts.append(f"{rnd.retries} {'retry' if rnd.retries == 1 else 'retries'}")
    return " · ".join(parts)


def _file_stem(result: RunResult, index: int) -> str:
    return f"{download_name(result, 'json').removesuffix('.json')}-round-{index}"


def requests_tab(result: RunResult) -> None:
    rounds = result.rounds
    if not rounds:
        st.caption("This run has no rounds, so no request went out.")
        return
    st.caption(
        "The request each round sent: the conversation, the answer so far as it was sent (without the end "
        "held back for the round to write again) and the round's max_tokens. Continuum stores no bodies; "
        "each is rebuilt from the run, never with the API key."
    )
    index = st.selectbox(
        "Round",
        list(range(1, len(rounds) + 1)),
        index=len(rounds) - 1,
        format_func=lambda i: _round_label(result, i),
        key=f"inspect_request_{result.run_id}",
    )
    try:
        request = requests.round_request(result, int(index))
    except requests.RequestUnavailable as exc:
        st.info(inert(str(exc)), icon=":material/info:")
        return
    except ContinuumError as exc:
        st.warning(inert(f"This round's request cannot be rebuilt: {exc}"), icon=":material/warning:")
        return
    request_card(result, request)


def _summary(request: requests.RoundRequest) -> str:
    parts = [
        f"**Round {request.index}**",
        inert_code(request.strategy),
        f"max_tokens {request.body.get('max_tokens')}",
        f"{request.answer_chars:,} characters of the answer so far",
    ]
    if request.attempts > 1:
        parts.append(f"sent {request.attempts} times (retried)")
    return " · ".join(parts)


def request_card(result: RunResult, request: requests.RoundRequest) -> None:
    with st.container(border=True, key="round_request"):
        st.markdown(_summary(request))
        st.code(f"POST {request.url}", language=None, wrap_lines=True)
        if request.held_back:
            st.caption(
                f"Not sent: the last {len(request.held_back):,} characters of round {request.index - 1}, held "
                f"back for this round to write again — {inert_code(inspect.visible_whitespace(request.held_back))}"
            )
        for note in request.notes:
            st.warning(inert(note), icon=":material/info:")
        body_block(result, request)
        curl_block(result, request)


def body_block(result: RunResult, request: requests.RoundRequest) -> None:
    st.markdown("**Body as sent**")
    shown, cut = requests.shortened_json(request.body, BODY_HEAD, BODY_TAIL)
    st.code(shown, language="json", wrap_lines=True, height=BODY_HEIGHT if len(shown) > 4000 else "content")
    data = request.data
    row = st.container(horizontal=True, vertical_alignment="center")
    row.download_button(
        "Download the body",
        data=data,
        file_name=_file_stem(result, request.index) + ".json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        key="request_body_download",
    )
    if cut:
        row.caption(
            f"Long text is shortened in the middle here ({cut:,} characters not shown); the download holds "
            f"the exact {len(data):,} bytes sent."
        )
    else:
        row.caption(f"{len(data):,} bytes, as sent.")


def curl_block(result: RunResult, request: requests.RoundRequest) -> None:
    st.markdown("**As a curl command**")
    stem = _file_stem(result, request.index)
    if len(request.data) > CURL_INLINE_LIMIT:
        st.code(requests.curl_command(request, body_file=stem + ".json"), language="bash", wrap_lines=True)
        st.caption(
            f"The body is too long to paste ({len(request.data):,} bytes): download it above and run the "
            "command where the file is."
        )
    else:
        command = requests.curl_command(request)
        st.code(
            command,
            language="bash",
            wrap_lines=True,
            height=BODY_HEIGHT if len(command) > 4000 else "content",
        )
    if request.keyed:
        st.caption(
            "Set `API_KEY` to your key first (`export API_KEY=…`): the key is never stored, so the command "
            "names it only. The body follows in a quoted heredoc, so nothing in it is read by the shell."
        )
    else:
        st.caption(
            "The demo model takes no key, so the command has no Authorization header. It listens on a port of "
            "the app that started it: the command reaches it on this machine while that app runs."
        )
