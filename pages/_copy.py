"""*Copy*: the whole answer to the clipboard, in one click (or Enter on the focused button).

Streamlit has no clipboard API. The answer is not kept in the page either (it
would cross the websocket a second time with every finished run, for a button
rarely pressed), so the click asks for it: the rerun the click starts draws a
small ``st.html`` element that holds the answer and, as it mounts, writes it to
the clipboard with ``navigator.clipboard.writeText`` (or, where that is missing,
as on a plain-http address other than localhost, by selecting it in a hidden
text area and ``document.execCommand("copy")``), then says so in a live region
next to the button. A browser that refuses both gets told to use the download.
Browsers allow a clipboard write shortly after a click (Chromium: any time the
page has focus), which the rerun comfortably fits in. No request leaves the page.

The text copied is the Markdown download's, byte for byte; the script is ours and
the answer is in it as a JSON string with ``<``, ``>`` and ``&`` escaped, so no
model output can end the script or form markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import streamlit as st

COPY_KEY = "copy_answer"  # the button
ASKED = "copy_answer_asked"  # session: the click's number, until the rerun it starts draws the copy
_COUNT = "copy_answer_count"

COPY_SCRIPT = """<span class="cm-copy-status" role="status" aria-live="polite"
  style="font-size: 0.875rem; opacity: 0.75; white-space: nowrap;">Copying…</span>
<script>
(() => {
  const click = %(nonce)d;  // a new script for every click, so a second click copies again
  const text = %(text)s;
  const box = document.currentScript ? document.currentScript.parentElement : null;
  const status = box ? box.querySelector(".cm-copy-status") : null;
  const say = (words) => { if (status) status.textContent = words; };
  const bySelection = () => {
    const focused = document.activeElement;
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    area.style.cssText = "position: fixed; top: 0; left: 0; width: 1px; height: 1px; opacity: 0;";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    area.remove();
    if (focused && focused.focus) focused.focus();
    return ok;
  };
  const report = (ok) => say(ok
    ? "Copied " + text.length.toLocaleString("en") + " characters"
    : "The browser did not allow copying: use Download output");
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => report(true), () => report(bySelection()));
  } else {
    report(bySelection());
  }
})();
</script>"""


def script_string(text: str) -> str:
    """``text`` as a JavaScript string literal that cannot end a ``<script>`` or open markup."""
    literal = json.dumps(text, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        literal = literal.replace(char, escaped)
    return literal.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def copy_html(text: str, nonce: int) -> str:
    return COPY_SCRIPT % {"nonce": nonce, "text": script_string(text)}


def _ask() -> None:
    state = st.session_state
    state[_COUNT] = int(state.get(_COUNT, 0)) + 1
    state[ASKED] = state[_COUNT]


def copy_button(text: Callable[[], str]) -> None:
    """The *Copy* button for the answer ``text()`` gives; in the rerun a click starts, the copy
    itself. ``text`` is called only then: a page drawn without a click builds nothing."""
    st.button(
        "Copy",
        icon=":material/content_copy:",
        key=COPY_KEY,
        on_click=_ask,
        help="Copy the whole answer to the clipboard, as Markdown (the same text as *Download output*)",
    )
    asked = st.session_state.pop(ASKED, None)
    if asked is not None:
        st.html(copy_html(text(), int(asked)), width="content", unsafe_allow_javascript=True)
