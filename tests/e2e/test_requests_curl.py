"""Inspect's Requests tab in a real browser: a round's request as sent, and as a curl command (issue 12).

Two short multi-round runs in the Studio, one on the demo model (no key) and one on a
custom server that wants a key (the demo model with ``auth=key``, the key pasted in
Settings). For each, the Requests tab shows the last round: the curl command has the
Authorization header only where a key is sent, and then only as ``$API_KEY``; its body
holds the answer so far; and run with the real ``curl``, it gets the end of the answer back.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid

import pytest

from core.demo import behaviour_url, demo_document
from tests.e2e.conftest import idle, open_tab, shot
from tests.e2e.test_studio import finished, generate, open_studio, set_number, use_custom_server

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")


def streamed_text(sse: str) -> str:
    pieces = []
    for line in sse.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            choices = json.loads(line[6:]).get("choices") or [{}]
            pieces.append(choices[0].get("delta", {}).get("content") or "")
    return "".join(pieces)


def inspect_last_round(page, app_url: str, marker: str) -> str:
    """Open the run whose prompt holds ``marker`` in Inspect's Requests tab; the curl command shown."""
    page.goto(f"{app_url}/inspect")
    box = page.get_by_role("combobox", name="Run")
    box.wait_for()
    idle(page)
    box.click()
    box.fill(marker)  # the list is virtualised: filter first
    page.get_by_role("option", name=re.compile(re.escape(marker))).click()
    idle(page)
    open_tab(page, "Requests")
    card = page.locator(".st-key-round_request")
    card.wait_for()
    code = card.get_by_test_id("stCode").filter(has_text="curl -sS -N")
    code.wait_for()
    code.scroll_into_view_if_needed()
    return code.locator("code").inner_text()


def body_of(command: str) -> dict:
    head, body, end = command.rstrip("\n").rsplit("\n", 2)
    assert head.endswith("--data @- <<'CONTINUUM_BODY'") and end == "CONTINUUM_BODY", command[:300]
    return json.loads(body)


def run_curl(command: str, api_key: str = "") -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        env={"PATH": "/usr/bin:/bin", "API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return streamed_text(done.stdout)


def test_the_last_rounds_curl_holds_the_answer_so_far_and_gets_the_end_back(page, app_url, demo_server):
    marker = f"ferns-{uuid.uuid4().hex[:8]}"
    prompt = f'Write 400 tokens about the `curl` of {marker}, "quoted" at $HOME — café.'
    open_studio(page, app_url)
    set_number(page, "Max tokens per round", 120)
    generate(page, prompt)
    finished(page)
    command = inspect_last_round(page, app_url, marker)
    shot(page, "inspect-requests-demo", full_page=False)
    assert "Authorization" not in command and "$API_KEY" not in command  # the demo model gets no key
    answer = body_of(command)["messages"][-1]["content"]
    whole = demo_document(prompt)
    assert len(answer) > 400 and whole.startswith(answer)  # the answer so far, rounds 1..n-1
    assert answer + run_curl(command) == whole  # the last round finished the document

    keyed = f"kelp-{uuid.uuid4().hex[:8]}"
    prompt = f"Write 400 tokens about {keyed} forests."
    use_custom_server(page, app_url, behaviour_url(demo_server, auth="key", k=keyed), "demo-key")
    set_number(page, "Max tokens per round", 120)
    generate(page, prompt)
    finished(page)
    command = inspect_last_round(page, app_url, keyed)
    shot(page, "inspect-requests-keyed", full_page=False)
    assert '-H "Authorization: Bearer $API_KEY"' in command and "demo-key" not in page.content()
    answer = body_of(command)["messages"][-1]["content"]
    assert answer + run_curl(command, api_key="demo-key") == demo_document(prompt)
