"""Measure how the peer server (llama-cpp-python) behaves where Continuum cares.

Run after ``tests/peers/setup.sh``: ``.venv/bin/python tests/peers/findings.py [--json OUT]``.
Starts its own server (and a second one with a small window for the overflow cases),
prints each finding with the exact bytes seen, and exits 0. Nothing is asserted here; the
tests in this folder pin the facts Continuum's tests rely on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.peers.server import peer_server

PROMPTS = [
    "Once upon a time",
    "The weather today is",
    "Write a long story about a lighthouse.",
    "1, 2, 3, 4, 5,",
    "In the beginning",
]
CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"


def render(messages: list[dict[str, str]], generation_prompt: bool = True) -> str:
    text = "".join(CHATML.format(**m) for m in messages)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


class Probe:
    def __init__(self, base: str, model: str) -> None:
        self.base = base
        self.root = base.removesuffix("/v1")
        self.model = model
        self.http = httpx.Client(timeout=120)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.base + path, json={"model": self.model, **body})

    def complete(self, prompt: str, n: int, **extra: Any) -> dict[str, Any]:
        r = self.post("/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0, **extra})
        r.raise_for_status()
        return r.json()

    def chat(self, messages: list[dict[str, Any]], n: int, **extra: Any) -> dict[str, Any]:
        r = self.post("/chat/completions", {"messages": messages, "max_tokens": n, "temperature": 0, **extra})
        r.raise_for_status()
        return r.json()

    def stream_raw(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self.http.stream(
            "POST", self.base + path, json={"model": self.model, "stream": True, **body}
        ) as r:
            raw = b"".join(r.iter_raw())
            return r.status_code, dict(r.headers), raw

    def tokens(self, text: str) -> list[int]:
        r = self.http.post(self.root + "/extras/tokenize", json={"input": text})
        r.raise_for_status()
        return list(r.json()["tokens"])


def sse_events(raw: bytes) -> list[bytes]:
    return [e for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]


def stream_text(raw: bytes, chat: bool) -> tuple[str, list[Any], list[Any]]:
    text, finishes, usages = "", [], []
    for event in sse_events(raw):
        for line in event.split(b"\n"):
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            obj = json.loads(line[6:])
            for ch in obj.get("choices", []):
                text += (ch.get("delta", {}).get("content") or "") if chat else (ch.get("text") or "")
                if ch.get("finish_reason"):
                    finishes.append(ch["finish_reason"])
            if obj.get("usage") is not None:
                usages.append(obj["usage"])
    return text, finishes, usages


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="also write the findings here")
    args = ap.parse_args()
    out: dict[str, Any] = {}

    def say(key: str, value: Any) -> None:
        out[key] = value
        print(f"--- {key}\n{value if isinstance(value, str) else json.dumps(value, indent=1)}", flush=True)

    with peer_server() as peer:
        p = Probe(peer.base_url, peer.model)
        say("f. GET /v1/models", p.http.get(peer.base_url + "/models").text)

        # b. a trailing assistant message
        count = [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, 3, 4, 5,"}]
        variants = {
            "plain": {},
            "vllm flags": {"continue_final_message": True, "add_generation_prompt": False},
            "prefix": "prefix",
        }
        closed = render(count)  # the assistant turn closed, a new one opened
        open_ = render(count[:1]) + "<|im_start|>assistant\n1, 2, 3, 4, 5,"  # truly continued
        ref_new = p.complete(closed, 20)["choices"][0]["text"]
        ref_cont = p.complete(open_, 20)["choices"][0]["text"]
        say(
            "b. prompt tokens of the two readings (/extras/tokenize adds <s> like the server)",
            {
                "closed + new turn": len(p.tokens(closed)),
                "continued in place": len(p.tokens(open_)),
                "completions on closed+new turn -> text": ref_new,
                "completions on continued prompt -> text": ref_cont,
            },
        )
        for name, extra in variants.items():
            msgs = [dict(m) for m in count]
            body: dict[str, Any] = {}
            if extra == "prefix":
                msgs[-1]["prefix"] = True
            else:
                body = dict(extra)
            res = p.chat(msgs, 20, **body)
            status, headers, raw = p.stream_raw(
                "/chat/completions", {"messages": msgs, "max_tokens": 20, "temperature": 0, **body}
            )
            stext, fins, _ = stream_text(raw, chat=True)
            content = res["choices"][0]["message"]["content"]
            say(
                f"b. chat {name}",
                {
                    "non-stream content": content,
                    "prompt_tokens": res["usage"]["prompt_tokens"],
                    "finish_reason": res["choices"][0]["finish_reason"],
                    "stream content": stext,
                    "stream finish": fins,
                    "equals new-turn completions": content == ref_new,
                    "equals continued completions": content == ref_cont,
                },
            )

        # c. self-consistency, completions and chat; with the server's default repeat_penalty
        # (1.1, counted over the tokens generated in the request only) and with it off
        k, j = 40, 15
        for label, extra in [("default repeat_penalty", {}), ("repeat_penalty=1", {"repeat_penalty": 1.0})]:
            rows = []
            for prompt in PROMPTS:
                t = p.complete(prompt, k, **extra)["choices"][0]["text"]
                t1 = p.complete(prompt, j, **extra)["choices"][0]["text"]
                t2 = p.complete(prompt + t1, k - j, **extra)["choices"][0]["text"]
                rows.append(
                    {
                        "prompt": prompt,
                        "T": t,
                        "T1": t1,
                        "T2": t2,
                        "T1+T2 == T": t1 + t2 == t,
                        "T startswith T1": t.startswith(t1),
                    }
                )
            say(
                f"c. completions k=40 j=15, {label}: {sum(r['T1+T2 == T'] for r in rows)}/{len(rows)} equal",
                rows,
            )
            rows = []
            for prompt in PROMPTS:
                user = [{"role": "user", "content": prompt}]
                t = p.chat(user, k, **extra)["choices"][0]["message"]["content"]
                t1 = p.chat(user, j, **extra)["choices"][0]["message"]["content"]
                t2 = p.chat([*user, {"role": "assistant", "content": t1}], k - j, **extra)
                t2 = t2["choices"][0]["message"]["content"]
                # the same through /completions with the template rendered by the client
                c2 = p.complete(render(user) + t1, k - j, **extra)["choices"][0]["text"]
                rows.append(
                    {
                        "prompt": prompt,
                        "T": t,
                        "T1": t1,
                        "T2 (chat prefill)": t2,
                        "T1+T2 == T": t1 + t2 == t,
                        "T2 (completions, template rendered)": c2,
                        "T1+c2 == T": t1 + c2 == t,
                    }
                )
            say(
                f"c. chat k=40 j=15 (prefill) vs completions with the rendered template, {label}: "
                f"prefill {sum(r['T1+T2 == T'] for r in rows)}/{len(rows)}, "
                f"completions {sum(r['T1+c2 == T'] for r in rows)}/{len(rows)} equal",
                rows,
            )

        # d. usage in streams, finish reasons, last chunks
        for path, body in [
            ("/completions", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}),
            (
                "/chat/completions",
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0},
            ),
        ]:
            for opts in ({}, {"stream_options": {"include_usage": True}}):
                status, headers, raw = p.stream_raw(path, {**body, **opts})
                _text, fins, usages = stream_text(raw, chat="chat" in path)
                events = sse_events(raw)
                say(
                    f"d. stream {path} {json.dumps(opts)}",
                    {
                        "status": status,
                        "content-type": headers.get("content-type"),
                        "events": len(events),
                        "finish_reasons": fins,
                        "usages": usages,
                        "first event (exact bytes)": repr(events[0]) if events else None,
                        "last 3 events (exact bytes)": [repr(e) for e in events[-3:]],
                        "raw tail": repr(raw[-700:]),
                    },
                )
        word = " " + p.complete("Once upon a time", 8)["choices"][0]["text"].split()[4]
        res = p.complete("Once upon a time", 8, stop=[word])
        status, _, raw = p.stream_raw(
            "/completions", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "stop": [word]}
        )
        say(
            f"d. finish with stop=[{word!r}] (the 5th word)",
            {
                "text": res["choices"][0]["text"],
                "finish": res["choices"][0]["finish_reason"],
                "usage": res["usage"],
                "stream": stream_text(raw, chat=False)[:2],
                "stream last 2 events": [repr(e) for e in sse_events(raw)[-2:]],
            },
        )

        # g. repeatability
        a = [p.complete("Once upon a time", 30)["choices"][0]["text"] for _ in range(3)]
        p.complete("Something else entirely, to move the cache", 30)
        a.append(p.complete("Once upon a time", 30)["choices"][0]["text"])
        a.append(p.complete("Once upon a time", 30, seed=7)["choices"][0]["text"])
        a.append(p.complete("Once upon a time", 30, temperature=0.0, top_p=0.5)["choices"][0]["text"])
        s = [
            p.chat([{"role": "user", "content": "Hi"}], 30)["choices"][0]["message"]["content"]
            for _ in range(2)
        ]
        hot = [
            p.complete("Once upon a time", 20, temperature=1.0, seed=s_)["choices"][0]["text"]
            for s_ in (5, 5, 6)
        ]
        say(
            "g. repeatability",
            {
                "temp 0 (x3, after another prompt, seed=7, top_p=.5)": a,
                "all equal": len(set(a)) == 1,
                "chat x2 equal": s[0] == s[1],
                "temp 1 seeds 5,5,6": hot,
            },
        )
        say("timing: 1 completion of 200 tokens (s)", _timed(lambda: p.complete("Once upon a time", 200)))
        log = peer.log()

    # e. overflow, on a small window so the cases are quick
    with peer_server(n_ctx=256) as peer:
        p = Probe(peer.base_url, peer.model)
        long_prompt = " ".join(["the"] * 300)  # 300 words = 300 tokens + bos > 256
        near = " ".join(["the"] * 200)  # 201 tokens: fits, but 201 + 100 > 256
        cases = {}
        for label, path, body in [
            ("completions prompt>n_ctx", "/completions", {"prompt": long_prompt, "max_tokens": 10}),
            (
                "chat prompt>n_ctx",
                "/chat/completions",
                {"messages": [{"role": "user", "content": long_prompt}], "max_tokens": 10},
            ),
            ("completions prompt+max_tokens>n_ctx", "/completions", {"prompt": near, "max_tokens": 100}),
        ]:
            r = p.post(path, {**body, "temperature": 0})
            entry: dict[str, Any] = {"non-stream status": r.status_code, "non-stream body": r.text[:600]}
            if r.status_code == 200:
                j_ = r.json()
                entry["usage"] = j_.get("usage")
                entry["finish"] = j_["choices"][0].get("finish_reason")
            mark = len(peer.log())
            try:
                status, headers, raw = p.stream_raw(path, {**body, "temperature": 0})
                entry["stream status"] = status
                entry["stream content-type"] = headers.get("content-type")
                entry["stream raw (first 400 / last 400 bytes)"] = [repr(raw[:400]), repr(raw[-400:])]
                entry["stream bytes"] = len(raw)
            except httpx.HTTPError as exc:
                entry["stream exception"] = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
            printed = peer.log()[mark:]
            entry["server printed (head)"] = printed[:700]
            entry["server printed (tail)"] = printed[-300:]
            cases[label] = entry
        say("e. overflow (n_ctx=256)", cases)
    say("server log head (first 40 lines of the main server)", "\n".join(log.splitlines()[:40]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _timed(fn: Any) -> float:
    t = time.monotonic()
    fn()
    return round(time.monotonic() - t, 2)


if __name__ == "__main__":
    sys.exit(main())
