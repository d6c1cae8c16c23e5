"""Write a tiny llama-architecture GGUF with random weights, deterministically.

Nothing is downloaded: the vocabulary is made up here and the weights are drawn from a
fixed seed, so the same command always writes the same bytes (checked by ``--check``).

The model is built so that a real server (llama.cpp) can be tested for *continuation*:

* **Tokenizer**: SentencePiece-style (``llama``) with byte fallback, so any text
  tokenises: ``<unk> <s> </s> <|im_start|> <|im_end|>``, the 256 byte tokens
  ``<0x00>``..``<0xFF>``, one token per printable ASCII character (space is ``▁``), and
  common English words as ``▁word`` together with the chain of their prefixes
  (``▁t ▁th ▁the``) so the merge reaches them. No space is added in front of a prompt.
* **Only whole words are generated**: the model can only emit ``▁word`` tokens, ``,``,
  ``.`` and a newline. Every other token gets a large negative logit through one
  residual dimension that the embeddings hold constant and that no layer writes to. So
  the text it writes re-tokenises to exactly the tokens it generated: a request that
  continues from the text of an earlier request sees the same tokens the earlier one
  saw, and at temperature 0 (with the server's ``repeat_penalty`` at 1) produces the
  same continuation.
* **It never stops by itself** (``</s>`` and ``<|im_end|>`` are suppressed too): every
  round ends with ``finish_reason: "length"``; a stop has to come from ``stop`` or the
  context window.
* **It does not loop**: greedy decoding on plain random weights falls into a two-word
  loop within a few hundred tokens (Continuum would stop with ``repetition``). A
  position head and recency heads (see :func:`build_tensors`) keep it writing new word
  salad: no loop in 2000 tokens from any prompt tried.
* A ChatML chat template is embedded as ``tokenizer.chat_template``, after ``{{ bos_token }}``
  (``add_bos_token`` is true): the server adds ``<s>`` to a /completions prompt itself,
  so Continuum's ``chatml`` rendering sent to /completions gives the very tokens that
  /chat/completions builds.

Usage: ``python make_model.py OUT.gguf [--seed N] [--check]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

import gguf
import numpy as np

SEED = 1234
N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 192
N_CTX_TRAIN = 2048
RMS_EPS = 1e-5
ROPE_BASE = 10000.0

ANCHOR = 0  # the residual dimension held constant: it carries the "never emit" bias
BOS_MARK = 1  # the residual dimension only <s> has
ANCHOR_VALUE = 8.0
SUPPRESS = -30.0
BOS = 1
POS_HEAD = 0
QK_STD = 2.0  # random heads: sharper than uniform attention
POS_Q, POS_K, POS_V = 2.0, 1.5, 1.0  # the position head (scales of its q, k and v)
RECENT_PAIRS = [4, 4, 5, 5]  # RoPE pair per recency head: windows of about 20 and 70 tokens
RECENT_SCORE = 20.0
RECENT_GAIN = 2.0
TIE = 1.0  # output = -TIE * embeddings + noise

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]

# Common English words (and a few pieces); each becomes the token "▁word".
WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this from
or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her
long make thing see him two has look more day could go come did number sound no most people my
over know water than call first who may down side been now find any new work part take get
place made live where after back little only round man year came show every good me give our
under name very through just form sentence great think say help low line differ turn cause much
mean before move right boy old too same tell does set three want air well also play small end
put home read hand port large spell add even land here must big high such follow act why ask
men change went light kind off need house picture try us again animal point mother world near
build self earth father head stand own page should country found answer school grow study still
learn plant cover food sun four between state keep eye never last let thought city tree cross
farm hard start might story saw far sea draw left late run while press close night real life
few north open seem together next white children begin got walk example ease paper group always
music those both mark often letter until mile river car feet care second book carry took
science eat room friend began idea fish mountain stop once base hear horse cut sure watch color
face wood main enough plain girl usual young ready above ever red list though feel talk bird
soon body dog family direct pose leave song measure door product black short numeral class wind
question happen complete ship area half rock order fire south problem piece told knew pass
since top whole king space heard best hour better true during hundred five remember step early
hold west ground interest reach fast verb sing listen six table travel less morning ten simple
several vowel toward war lay against pattern slow center love person money serve appear road
map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry dark
machine note wait plan figure star box noun field rest correct able pound done beauty drive
stood contain front teach week final gave green oh quick develop ocean warm free minute strong
special mind behind clear tail produce fact The It In A He She They We This There When Once And
But So Then
""".split()  # noqa: SIM905

PUNCT = [",", "."]


def build_vocab() -> tuple[list[str], list[float], list[int], list[int]]:
    """Tokens, scores, types, and the ids the model may generate."""
    tokens: list[str] = []
    types: list[int] = []
    index: dict[str, int] = {}

    def add(text: str, kind: int) -> int:
        if text in index:
            return index[text]
        index[text] = len(tokens)
        tokens.append(text)
        types.append(kind)
        return index[text]

    add(SPECIALS[0], gguf.TokenType.UNKNOWN)
    for s in SPECIALS[1:]:
        add(s, gguf.TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", gguf.TokenType.BYTE)
    add("▁", gguf.TokenType.NORMAL)
    for c in range(0x21, 0x7F):
        add(chr(c), gguf.TokenType.NORMAL)
    allowed = {index["<0x0A>"], *(index[p] for p in PUNCT)}
    seen: set[str] = set()
    for word in WORDS:
        if word in seen:
            continue
        seen.add(word)
        piece = "▁" + word
        for i in range(2, len(piece)):
            add(piece[:i], gguf.TokenType.NORMAL)
        allowed.add(add(piece, gguf.TokenType.NORMAL))
    # Merge priority: longer pieces first, then vocabulary order (only ▁-prefix chains merge).
    scores = [
        0.0 if t != gguf.TokenType.NORMAL else -(1000.0 - len(tok)) - i / 10000.0
        for i, (tok, t) in enumerate(zip(tokens, types, strict=True))
    ]
    return tokens, scores, [int(t) for t in types], sorted(allowed)


def build_tensors(n_vocab: int, allowed: list[int], seed: int) -> dict[str, np.ndarray]:
    """Random weights, with three pieces of structure (all fixed by the seed):

    * the anchor: a residual dimension every embedding holds at ANCHOR_VALUE and no layer
      writes to; the output layer reads it to push the non-generable tokens far down;
    * a position head (layer 0, head 0): a constant query against the key of ``<s>`` at
      position 0, so RoPE makes its output a function of the absolute position;
    * recency heads (layer 1): a constant query and key, so RoPE gives each a window over
      the last few dozen tokens; they add the recent tokens' embeddings to the residual, and
      the output layer is the negated embedding table (plus noise), so a token just written
      is pushed down: a built-in repetition penalty. Without it greedy decoding on random
      weights falls into a two-word loop after a few hundred tokens.
    """
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    hd = N_EMBD // N_HEAD
    pos = slice(POS_HEAD * hd, (POS_HEAD + 1) * hd)
    t: dict[str, np.ndarray] = {}
    emb = normal((n_vocab, N_EMBD), 1.0)
    emb[:, ANCHOR] = ANCHOR_VALUE
    emb[:, BOS_MARK] = 0.0
    emb[BOS, BOS_MARK] = ANCHOR_VALUE
    t["token_embd.weight"] = emb
    free = [d for d in range(N_EMBD) if d not in (ANCHOR, BOS_MARK)]
    for layer in range(N_LAYER):
        p = f"blk.{layer}."
        norm = np.ones(N_EMBD, dtype=np.float32)
        wq = normal((N_HEAD * hd, N_EMBD), QK_STD / np.sqrt(N_EMBD))
        wk = normal((N_HEAD * hd, N_EMBD), QK_STD / np.sqrt(N_EMBD))
        wv = normal((N_HEAD * hd, N_EMBD), 1.0 / np.sqrt(N_EMBD))
        wo = normal((N_EMBD, N_HEAD * hd), 1.0 / np.sqrt(N_EMBD))
        for w in (wq, wk, wv):
            w[:, ANCHOR] = 0.0
        if layer == 0:
            wq[pos, :] = 0.0
            wq[pos, ANCHOR] = normal((hd,), POS_Q)
            wk[pos, BOS_MARK] = normal((hd,), POS_K)
            wv[pos, BOS_MARK] = normal((hd,), POS_V)
        else:
            # recency heads: q and k only in one RoPE pair, aligned, from the anchor: the score
            # is RECENT_SCORE * cos(distance * theta), a window that narrows as theta grows.
            wq[:] = 0.0
            wk[:] = 0.0
            basis = np.linalg.qr(rng.standard_normal((len(free), len(free))))[0].astype(np.float32)
            wv[:] = 0.0
            wo[:] = 0.0
            per = len(free) // N_HEAD
            for h in range(N_HEAD):
                pair = RECENT_PAIRS[h % len(RECENT_PAIRS)]
                amp = np.sqrt(RECENT_SCORE * np.sqrt(hd)) / ANCHOR_VALUE * 1.4
                wq[h * hd + 2 * pair, ANCHOR] = amp
                wk[h * hd + 2 * pair, ANCHOR] = amp
                cols = basis[:, h * per : (h + 1) * per]  # (free, per): this head's subspace
                wv[h * hd : h * hd + per, free] = cols.T
                wo[np.ix_(free, range(h * hd, h * hd + per))] = cols * RECENT_GAIN
        for w in (wo,):  # nothing writes to the anchor or the <s> marker
            w[[ANCHOR, BOS_MARK], :] = 0.0
        down = normal((N_EMBD, N_FF), 1.0 / np.sqrt(N_FF))
        down[[ANCHOR, BOS_MARK], :] = 0.0
        t[p + "attn_norm.weight"] = norm.copy()
        t[p + "attn_q.weight"] = wq
        t[p + "attn_k.weight"] = wk
        t[p + "attn_v.weight"] = wv
        t[p + "attn_output.weight"] = wo
        norm[ANCHOR] = 0.0
        t[p + "ffn_norm.weight"] = norm
        t[p + "ffn_gate.weight"] = normal((N_FF, N_EMBD), 1.0 / np.sqrt(N_EMBD))
        t[p + "ffn_up.weight"] = normal((N_FF, N_EMBD), 1.0 / np.sqrt(N_EMBD))
        t[p + "ffn_down.weight"] = down
    t["output_norm.weight"] = np.ones(N_EMBD, dtype=np.float32)
    out = -emb * TIE + normal((n_vocab, N_EMBD), 1.0)
    out[:, ANCHOR] = SUPPRESS
    out[allowed, ANCHOR] = 0.0
    out[:, BOS_MARK] = 0.0
    t["output.weight"] = out
    return t


def write(path: str, seed: int = SEED) -> None:
    tokens, scores, types, allowed = build_vocab()
    tensors = build_tensors(len(tokens), allowed, seed)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("continuum-tiny-random")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--check", action="store_true", help="write twice and compare the bytes")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    write(tmp, args.seed)
    if args.check:
        with tempfile.TemporaryDirectory() as d:
            again = os.path.join(d, "again.gguf")
            write(again, args.seed)
            if sha256(again) != sha256(tmp):
                print("make_model: two writes differ", file=sys.stderr)
                return 1
    os.replace(tmp, args.out)
    tokens, _, _, allowed = build_vocab()
    print(
        f"{args.out}: {os.path.getsize(args.out)} bytes, {len(tokens)} tokens "
        f"({len(allowed)} generable), sha256 {sha256(args.out)[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
