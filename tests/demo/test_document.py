"""The demo model's texts and tokenizer, without a server."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.demo import count_tokens, demo_document, demo_reasoning
from core.demo.tokens import Document, common_prefix_length, tokenize

REPO = Path(__file__).resolve().parents[2]


def test_same_prompt_gives_the_same_document() -> None:
    assert demo_document("Write about lighthouses") == demo_document("Write about lighthouses")


def test_document_is_identical_in_another_process_with_another_hash_seed() -> None:
    code = "from core.demo import demo_document; print(demo_document('Write about lighthouses'), end='')"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == demo_document("Write about lighthouses")


def test_different_prompts_give_different_documents() -> None:
    assert demo_document("Write about lighthouses") != demo_document("Write about harbours")


def test_document_is_keyed_on_the_stripped_prompt_not_the_model() -> None:
    base = demo_document("Write about lighthouses")
    assert demo_document("  Write about lighthouses\n") == base
    assert demo_document("Write about lighthouses", model="demo-32k") == base


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown demo model"):
        demo_document("x", model="gpt-4")


def test_default_length_is_1500_tokens() -> None:
    assert count_tokens(demo_document("Write an essay about lighthouses")) == 1500


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [
        ("Write 20000 tokens about X", 20000),
        ("Write about tides, about 2k tokens", 2000),
        ("A 300-word note on maps", 300),
        ("1,500 words on tides", 1500),
        ("Write 1.5k words", 1500),
        ("Write 7 tokens", 7),
        ("Write 81 tokens please", 81),
        ("Write 1 word", 1),
    ],
)
def test_a_number_of_tokens_or_words_in_the_prompt_sets_the_length(prompt: str, tokens: int) -> None:
    assert count_tokens(demo_document(prompt)) == tokens


def test_a_long_document_is_markdown_with_headings_lists_tables_and_code() -> None:
    text = demo_document("Write 8000 tokens about harbours")
    assert text.startswith("# ")
    for marker in ("\n## ", "\n- ", "\n1. ", "\n```", "\n| --- |"):
        assert marker in text, marker


def test_a_document_ends_with_a_full_stop() -> None:
    assert demo_document("Write 5000 tokens about maps").endswith(".")


PROSE_PROMPTS = [f"Write about 3000 tokens on topic {n}." for n in range(40)]
VOWEL_SOUND = ("a", "e", "i", "o", "honest")  # the demo's words: "an ancient", "an honest", "a useful"


def prose(text: str) -> str:
    """The document without its code blocks (``def describe(self)`` is not prose)."""
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def word_pairs(text: str) -> list[tuple[str, str]]:
    """Each two words in a row within a line (a paragraph, a list item, a heading, a table row)."""
    lines = prose(text).lower().splitlines()
    return [pair for line in lines for pair in itertools.pairwise(re.findall(r"[\w']+", line))]


@pytest.mark.parametrize("prompt", PROSE_PROMPTS)
def test_an_comes_before_a_vowel_sound_and_a_before_any_other(prompt: str) -> None:
    pairs = word_pairs(demo_document(prompt))
    assert [p for p in pairs if p[0] == "a" and p[1].startswith(VOWEL_SOUND)] == []
    assert [p for p in pairs if p[0] == "an" and not p[1].startswith(VOWEL_SOUND)] == []


@pytest.mark.parametrize("prompt", PROSE_PROMPTS)
def test_no_word_is_written_twice_in_a_row(prompt: str) -> None:
    assert [p for p in word_pairs(demo_document(prompt)) if p[0] == p[1]] == []


@pytest.mark.parametrize("prompt", PROSE_PROMPTS)
def test_a_sentence_never_ends_on_a_noun_without_its_determiner(prompt: str) -> None:
    """Not "… although station.", "… explains journey.", "… toward market." nor "… market river."."""
    from core.demo.document import _CONJ, _NOUN, _PREP, _VERB

    bare = set(_CONJ) | set(_PREP) | set(_VERB) | set(_NOUN)
    endings = re.findall(r"(\S+) (\w+)\.(?:\s|$)", prose(demo_document(prompt)))
    assert [e for e in endings if e[1] in _NOUN and e[0].lower() in bare] == []


@pytest.mark.parametrize("prompt", PROSE_PROMPTS)
def test_a_clause_after_a_conjunction_never_ends_without_its_verb(prompt: str) -> None:
    """Not "… while that café." nor "… because every quiet river."."""
    from core.demo.document import _ADJ, _CONJ, _DET, _NOUN

    text, dets = prose(demo_document(prompt)), set(_DET) | {"an"}
    three = re.findall(r"(\S+) (\S+) (\w+)\.(?:\s|$)", text)
    four = re.findall(r"(\S+) (\S+) (\S+) (\w+)\.(?:\s|$)", text)
    assert [e for e in three if e[0] in _CONJ and e[1] in dets and e[2] in _NOUN] == []
    assert [e for e in four if e[0] in _CONJ and e[1] in dets and e[2] in _ADJ and e[3] in _NOUN] == []


def test_every_word_of_the_prose_is_one_demo_token() -> None:
    words = prose(demo_document(PROSE_PROMPTS[0])).split()
    assert all(count_tokens(" " + word) == 1 for word in words)


def test_count_prompt_answers_the_numbers() -> None:
    assert demo_document("Count from 1 to 12") == "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12."


def test_count_prompt_may_start_elsewhere_and_omit_from() -> None:
    assert demo_document("Please count 5 to 8.") == "5, 6, 7, 8."
    assert demo_document("count to 3") == "1, 2, 3."
    assert demo_document("List the numbers from 1 to 5") == "1, 2, 3, 4, 5."


def test_count_prompt_tokens_are_number_pieces() -> None:
    assert tokenize(demo_document("Count from 1 to 4")) == ["1,", " 2,", " 3,", " 4."]


def test_reasoning_is_deterministic_and_distinct_from_the_document() -> None:
    reasoning = demo_reasoning("Write about maps")
    assert reasoning == demo_reasoning("Write about maps")
    assert 40 < count_tokens(reasoning) < 300
    assert reasoning not in demo_document("Write about maps")
    assert not reasoning[0].isspace()


@given(st.text(max_size=300))
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert count_tokens(text) == len(tokenize(text))


def test_a_token_is_leading_whitespace_and_up_to_12_characters() -> None:
    assert tokenize("Hello  wonderful\nworld ") == ["Hello", "  wonderful", "\nworld", " "]
    assert tokenize(" abcdefghijklmnopq") == [" abcdefghijkl", "mnopq"]


@given(st.text(alphabet="ab \n", max_size=60), st.integers(min_value=0, max_value=70))
def test_continuing_from_any_offset_gives_the_rest_of_the_text(text: str, offset: int) -> None:
    doc = Document(text)
    index, partial = doc.locate(offset)
    rest = (partial or "") + "".join(doc.tokens[index + (1 if partial is not None else 0) :])
    assert rest == text[offset:]


def test_an_offset_inside_a_token_yields_the_rest_of_that_token_first() -> None:
    doc = Document("Hello wonderful world")
    assert doc.locate(9) == (1, "derful")
    assert doc.locate(6) == (1, "wonderful")
    assert doc.locate(5) == (1, None)


@given(st.text(max_size=40), st.text(max_size=40))
def test_common_prefix_length_matches_a_plain_scan(a: str, b: str) -> None:
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix_length(a, b) == expected
