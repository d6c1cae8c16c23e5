"""Network and protocol failures against real servers on 127.0.0.1, and the three timeouts.

Each failure must leave as a ContinuumError that says what happened and what to
do, never as a traceback or a hang, and a run that meets it must keep the text
generated before it. The servers are small and real (tests/loopback.py): a
scripted HTTP(S) server, a listener whose queue is full, a port nobody listens
on; the demo model where its ``silent``, ``stall`` and ``rate`` behaviours fit.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.continuation import engine
from core.continuation.rounds import RetryPolicy
from core.demo import demo_document
from core.types import Retrying, RoundFinished, RunFinished, RunSpec
from core.wire.client import Client, Timeouts
from core.wire.errors import (
    ConfigError,
    ConnectError,
    ConnectTimeoutError,
    ContinuumError,
    IdleTimeoutError,
    MalformedStreamError,
    RoundTimeoutError,
    ServerError,
    UnexpectedResponseError,
)
from tests.loopback import (
    ScriptedServer,
    Step,
    answer,
    bytes_only,
    chunk,
    full_backlog_port,
    raw,
    redirect_to_itself,
    refused_port,
    self_signed_cert,
    silent,
    sse,
    tls_context,
)

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    b"</center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n"
)
PORTAL = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Accept the Wi-Fi terms</body></html>"
NOT_UTF8 = b'data: {"choices": [{"delta": {"content": "caf\xe9"}, "finish_reason": null}]}\n\n'
QUICK = RetryPolicy(max_attempts=2, base=0.01, cap=0.01, jitter=0.0)


def failure(url: str, body: dict[str, Any] = BODY, **client: Any) -> ContinuumError:
    """The error one streamed request to ``url`` ends with."""
    with pytest.raises(ContinuumError) as caught:
        list(Client(url, **client).stream_chat(body))
    return caught.value


# ---------------------------------------------------------------- what the server says


def test_an_html_502_page_from_a_proxy_is_a_retryable_server_error_that_says_so() -> None:
    with ScriptedServer(raw(502, NGINX_502, "text/html")) as server:
        error = failure(server.base_url)
    assert isinstance(error, ServerError) and error.retryable
    assert "HTTP 502" in str(error) and "an HTML error page, probably from a proxy" in str(error)
    assert "502 Bad Gateway nginx/1.25.3" in str(error) and "retries" in str(error)


def test_an_html_page_with_status_200_is_named_as_a_page_not_an_api_answer() -> None:
    with ScriptedServer(raw(200, PORTAL, "text/html; charset=utf-8")) as server:
        error = failure(server.base_url)
    assert isinstance(error, UnexpectedResponseError) and not error.retryable
    assert str(error).startswith(
        f"Got an HTML page ('text/html', HTTP 200) from {server.base_url}/chat/completions"
    )
    assert "Accept the Wi-Fi terms" in str(error) and "login or captive portal" in str(error)


def test_a_redirect_loop_stops_after_five_redirects_and_is_not_retried() -> None:
    with ScriptedServer(redirect_to_itself()) as server:
        error = failure(server.base_url)
    assert isinstance(error, ConnectError) and not error.retryable
    assert "Too many redirects (more than 5)" in str(error) and len(server.requests) == 6


def test_bytes_that_are_not_utf8_in_a_stream_are_a_clear_error_after_the_good_text() -> None:
    """Decided: not decoded with replacement characters. A U+FFFD would become part of the
    answer and of the next round's prefill; the error keeps the text before it instead."""
    with ScriptedServer(sse(chunk("Bonjour "), NOT_UTF8)) as server:
        stream = Client(server.base_url).stream_chat(BODY)
        first = next(stream)
        with pytest.raises(MalformedStreamError) as caught:
            next(stream)
    assert first.content == "Bonjour "
    assert "sent bytes that are not UTF-8 (0xe9 at byte" in str(caught.value)
    assert "The text so far is kept" in str(caught.value)


def test_a_port_speaking_another_protocol_is_named_as_not_http() -> None:
    with ScriptedServer(bytes_only(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as server:
        error = failure(server.base_url)
    assert isinstance(error, UnexpectedResponseError) and "does not speak HTTP" in str(error)


# ---------------------------------------------------------------- no connection


def test_a_refused_connection_says_to_check_the_server_and_is_retried() -> None:
    port = refused_port()
    error = failure(f"http://127.0.0.1:{port}/v1")
    assert isinstance(error, ConnectError) and error.retryable
    assert "connection refused. Is the server running? Check the base URL." in str(error)


def test_an_unknown_host_names_the_host_and_is_not_retried() -> None:
    """No DNS query leaves the machine: /etc/nsswitch.conf says ``files mdns4_minimal
    [NOTFOUND=return] dns``; the name is not in /etc/hosts, does not end in .local (so
    mdns4_minimal passes), and is longer than the 255 bytes a DNS name may have, so glibc's
    resolver fails with EAI_NONAME without building a query (checked with strace: no
    AF_INET socket is opened). It ends in the reserved .invalid TLD besides."""
    host = ".".join(["nohost" + "x" * 54] * 5) + ".invalid"
    error = failure(f"http://{host}/v1")
    assert isinstance(error, ConnectError) and not error.retryable
    assert f"the host name '{host}' could not be resolved. Check the base URL for typos" in str(error)


def test_a_host_name_part_longer_than_63_characters_is_a_config_error_not_a_crash() -> None:
    error = failure(f"http://{'a' * 64}.invalid/v1")
    assert isinstance(error, ConfigError) and "1 to 63 characters" in str(error)


def test_https_to_a_plain_http_port_is_a_tls_handshake_error_suggesting_http() -> None:
    with ScriptedServer(answer("hi")) as server:
        error = failure(server.base_url.replace("http://", "https://"))
    assert isinstance(error, ConnectError) and not error.retryable
    assert "the TLS handshake failed" in str(error) and "use http:// in the base URL" in str(error)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    try:
        return self_signed_cert(tmp_path_factory.mktemp("tls"))
    except RuntimeError:
        pytest.skip("openssl is not installed")


def test_a_self_signed_certificate_fails_verification_and_the_hint_fixes_it(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TLS server on loopback with a self-signed certificate for 127.0.0.1; following
    the hint (SSL_CERT_FILE naming that certificate) makes the same server work."""
    with ScriptedServer(answer("trusted"), tls=tls_context(*certificate)) as server:
        error = failure(server.base_url)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        text = "".join(d.content for d in Client(server.base_url).stream_chat(BODY))
    assert isinstance(error, ConnectError) and not error.retryable
    assert "TLS certificate could not be verified (self-signed certificate)" in str(error)
    assert "set SSL_CERT_FILE" in str(error) and text == "trusted"


# ---------------------------------------------------------------- a run keeps its text

ROUND_ONE = ("Once upon a time, ", "there was a keeper ")


def run_until_error(server: ScriptedServer, **spec: Any) -> tuple[RunFinished, str]:
    """How the run ended, and the answer so far it sent in round two (the round-one text
    minus the tail held back for the model to regenerate)."""
    run_spec = RunSpec(
        messages=[{"role": "user", "content": "a story"}], base_url=server.base_url, model="m", **spec
    )
    ends = [e for e in engine.run(run_spec, retry=QUICK) if isinstance(e, RunFinished)]
    sent = server.requests[1]["body"]["messages"][-1]
    assert sent["role"] == "assistant" and "".join(ROUND_ONE).startswith(sent["content"])
    return ends[0], sent["content"]


@pytest.mark.parametrize(
    ("second", "said", "streamed"),
    [
        (raw(502, NGINX_502, "text/html"), "an HTML error page, probably from a proxy", ""),
        (raw(200, PORTAL, "text/html"), "Got an HTML page ('text/html', HTTP 200)", ""),
        (redirect_to_itself(), "Too many redirects", ""),
        (sse(chunk("keeper and "), NOT_UTF8), "not UTF-8", "keeper and "),
    ],
    ids=["html-502", "html-200", "redirect-loop", "not-utf8"],
)
def test_a_run_that_meets_a_failure_in_round_two_keeps_its_text(
    second: Step, said: str, streamed: str
) -> None:
    """Round two fails before any text (the held-back tail of round one is given back) or after
    some (that text is kept after the answer it continued)."""
    with ScriptedServer(answer(*ROUND_ONE, finish="length"), second) as server:
        end, sent = run_until_error(server)
    assert end.stop_reason == "error" and end.error is not None and said in end.error.message
    assert end.result.text == (sent + streamed if streamed else "".join(ROUND_ONE))


def test_a_run_whose_server_goes_away_keeps_its_text_and_says_connection_refused() -> None:
    with ScriptedServer(answer(*ROUND_ONE, finish="length")) as server:
        run_spec = RunSpec(
            messages=[{"role": "user", "content": "a story"}], base_url=server.base_url, model="m"
        )
        events = []
        for event in engine.run(run_spec, retry=QUICK):
            events.append(event)
            if isinstance(event, RoundFinished):
                server.close()  # the server stops between round 1 and round 2
    end = events[-1]
    assert isinstance(end, RunFinished) and end.stop_reason == "error"
    assert end.result.text == "".join(ROUND_ONE) and "connection refused" in end.error.message  # type: ignore[union-attr]


# ---------------------------------------------------------------- timeouts


def test_connect_timeout_on_a_listener_that_never_accepts_ends_in_a_clear_error() -> None:
    """full_backlog_port: the listen queue is full, so the kernel drops our SYN and connect()
    blocks; only the connect timeout (0.3 s here) ends it. Retried once, then the run stops."""
    with full_backlog_port() as port:
        run_spec = RunSpec(
            messages=[{"role": "user", "content": "x"}], base_url=f"http://127.0.0.1:{port}/v1"
        )
        events = list(engine.run(run_spec, timeouts=Timeouts(connect=0.3), retry=QUICK))
    end = events[-1]
    assert isinstance(end, RunFinished) and end.stop_reason == "error" and end.error is not None
    assert end.error.kind == "ConnectTimeoutError" and "within 0.3 s" in end.error.message
    assert [type(e) for e in events].count(Retrying) == 1


def test_idle_timeout_on_a_silent_server_ends_in_a_clear_error(demo_url: Callable[..., str]) -> None:
    """Demo ``silent=S``: headers, then no byte at all, so the read timeout fires."""
    run_spec = RunSpec(messages=[{"role": "user", "content": "x"}], base_url=demo_url(silent=30))
    end = list(engine.run(run_spec, timeouts=Timeouts(idle=0.3), retry=QUICK))[-1]
    assert isinstance(end, RunFinished) and end.error is not None
    assert (end.stop_reason, end.error.kind) == ("error", "IdleTimeoutError")
    assert "sent nothing for 0.3 s (idle timeout)" in end.error.message


def test_idle_timeout_mid_stream_keeps_the_text_and_continues_in_a_recovery_round() -> None:
    """The demo's ``silent`` comes before the first token; this server goes quiet mid-answer."""
    silent_then = sse(chunk("Once upon a time, "), chunk("there was "), then_silent=True)
    with ScriptedServer(silent_then, answer(" was a lighthouse.")) as server:
        run_spec = RunSpec(messages=[{"role": "user", "content": "x"}], base_url=server.base_url, model="m")
        end = list(engine.run(run_spec, timeouts=Timeouts(idle=0.3), retry=QUICK))[-1]
        resent = server.requests[1]["body"]["messages"][-1]
    assert isinstance(end, RunFinished) and end.stop_reason == "finished"
    first, second = end.result.rounds
    assert "idle timeout" in (first.error or "") and second.recovery
    assert resent["role"] == "assistant" and "Once upon a time, there was ".startswith(resent["content"])
    assert resent["content"].startswith("Once upon a time,")  # at most a word held back
    assert end.result.text == resent["content"] + " was a lighthouse."


def test_keep_alives_hold_off_the_idle_timeout_but_not_the_round_timeout(
    demo_url: Callable[..., str],
) -> None:
    """Demo ``stall=S`` sends ``: keep-alive`` comments: activity for the idle timeout (1 s),
    so only the round ceiling (0.6 s) can end the request."""
    demo_body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    error = failure(demo_url(stall=30), demo_body, timeouts=Timeouts(idle=1.0, round=0.6))
    assert isinstance(error, RoundTimeoutError) and "ran longer than 0.6 s (round timeout)" in str(error)


def test_round_timeout_cuts_rounds_and_recovery_rounds_finish_the_exact_answer(
    demo_url: Callable[..., str],
) -> None:
    prompt = "Write 240 tokens about tides"
    run_spec = RunSpec(messages=[{"role": "user", "content": prompt}], base_url=demo_url(rate=300))
    end = list(engine.run(run_spec, timeouts=Timeouts(round=0.3), retry=QUICK))[-1]
    assert isinstance(end, RunFinished) and end.stop_reason == "finished"
    assert end.result.text == demo_document(prompt)
    cut = [r for r in end.result.rounds if r.error and "round timeout" in r.error]
    assert cut and all(r.recovery for r in end.result.rounds[1:])


# ---------------------------------------------------------------- the flags reach the client


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_run_round_timeout_flag_gives_recovery_rounds_and_the_exact_answer(
    capsys: pytest.CaptureFixture[str], demo_url: Callable[..., str], tmp_path: Path, tmp_db: Path
) -> None:
    prompt, transcript = "Write 240 tokens about tides", tmp_path / "t.json"
    argv = [
        "run",
        "--provider",
        "custom",
        "--base-url",
        demo_url(rate=300),
        "--model",
        "demo",
        "--prompt",
        prompt,
    ]
    status, out, _ = cli(capsys, *argv, "--round-timeout", "0.3", "--transcript", str(transcript))
    rounds = json.loads(transcript.read_text())["rounds"]
    assert status == 0 and out.rstrip("\n") == demo_document(prompt).rstrip("\n")
    assert any("round timeout" in (r["error"] or "") for r in rounds) and rounds[-1]["recovery"]


def test_models_connect_timeout_flag_ends_in_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with full_backlog_port() as port:
        url = f"http://127.0.0.1:{port}/v1"
        status, _, err = cli(
            capsys,
            "models",
            "--provider",
            "custom",
            "--model",
            "m",
            "--base-url",
            url,
            "--connect-timeout",
            "0.3",
        )
    assert status == 1 and f"error: Could not connect to {url}/models?filter=with_meta within 0.3 s" in err


def test_models_idle_timeout_flag_ends_in_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedServer(silent()) as server:
        status, _, err = cli(
            capsys,
            "models",
            "--provider",
            "custom",
            "--model",
            "m",
            "--base-url",
            server.base_url,
            "--idle-timeout",
            "0.3",
        )
    assert status == 1 and "sent nothing for 0.3 s (idle timeout)" in err


def test_resume_and_batch_pass_their_timeout_flags_on(
    capsys: pytest.CaptureFixture[str], demo_url: Callable[..., str], tmp_path: Path, tmp_db: Path
) -> None:
    from core.services.store import Store

    url, prompt = demo_url(rate=300), "Write 240 tokens about tides"
    target = ["--provider", "custom", "--base-url", url, "--model", "demo"]
    assert cli(capsys, "run", *target, "--prompt", prompt, "--max-tokens", "20", "--max-rounds", "1")[0] == 0
    with Store(tmp_db) as store:
        run_id = store.list_runs(limit=1)[0].id
    status, out, _ = cli(capsys, "runs", "resume", run_id, "--max-tokens", "4096", "--round-timeout", "0.3")
    with Store(tmp_db) as store:
        resumed = store.load(run_id)
    assert status == 0 and resumed.text == demo_document(prompt)
    assert any("round timeout" in (r.error or "") for r in resumed.rounds)

    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "prompt": prompt}) + "\n", encoding="utf-8")
    status, out, _ = cli(capsys, "batch", str(items), *target, "--round-timeout", "0.3", "--quiet")
    (line,) = out.splitlines()
    result = json.loads(line)
    assert status == 0 and result["text"] == demo_document(prompt)
    assert any("round timeout" in (r["error"] or "") for r in result["rounds"])


def test_a_connection_that_is_accepted_but_never_answered_is_an_idle_timeout_not_a_connect_timeout() -> None:
    """The listener accepts (a connection exists) but never writes: the connect timeout is over,
    the idle timeout (0.3 s) ends the wait for the response headers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        error = failure(url, timeouts=Timeouts(connect=5, idle=0.3))
    assert isinstance(error, IdleTimeoutError) and not isinstance(error, ConnectTimeoutError)


def test_a_503_with_retry_after_is_retried_after_the_wait_it_asked_for() -> None:
    busy = raw(503, b'{"error": {"message": "overloaded"}}', "application/json", Retry_After="0.2")
    with ScriptedServer(busy, answer("Hello", " world")) as server:
        spec = RunSpec(messages=[{"role": "user", "content": "hi"}], base_url=server.base_url, model="m")
        events = list(engine.run(spec, retry=RetryPolicy(max_attempts=3, base=5.0, cap=5.0, jitter=0.0)))
    retries = [e for e in events if isinstance(e, Retrying)]
    assert [(r.wait, "503" in r.reason) for r in retries] == [(0.2, True)]  # not the 5 s backoff
    assert events[-1].result.text == "Hello world"
