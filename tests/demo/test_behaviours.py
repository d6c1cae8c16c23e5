"""Behaviour prefixes: building, parsing and checking them."""

from __future__ import annotations

import pytest

from core.demo import behaviour_url, start_demo_server
from core.demo.behaviours import BehaviourError, Behaviours, parse_segment, split_path


def test_behaviour_url_puts_a_prefix_before_v1() -> None:
    url = behaviour_url("http://127.0.0.1:8765/v1", prefill="ignored", usage="absent")
    assert url == "http://127.0.0.1:8765/x/prefill=ignored,usage=absent/v1"


def test_behaviour_url_without_behaviours_is_the_base_url() -> None:
    assert behaviour_url("http://127.0.0.1:8765/v1") == "http://127.0.0.1:8765/v1"


def test_behaviour_url_merges_an_existing_prefix_new_values_winning() -> None:
    first = behaviour_url("http://h:1/v1", prefill="ignored", usage="absent")
    assert behaviour_url(first, usage="separate") == "http://h:1/x/prefill=ignored,usage=separate/v1"


def test_behaviour_url_refuses_a_bad_value_of_a_known_key() -> None:
    with pytest.raises(BehaviourError, match="choose one of continue, ignored, prefix, echo"):
        behaviour_url("http://h:1/v1", prefill="sometimes")


def test_odd_characters_in_values_survive_the_round_trip() -> None:
    url = behaviour_url("http://h:1/v1", k="test_x[a=b, c/d]")
    segment, rest = split_path(url.removeprefix("http://h:1"))
    assert rest == "/v1"
    assert parse_segment(segment) == {"k": "test_x[a=b, c/d]"}


def test_values_from_a_url_are_converted_and_unknown_keys_ignored() -> None:
    b = Behaviours().with_values({"drop": "12", "stall": "0.5", "seed": "-3", "k": "anything"})
    assert (b.drop, b.stall, b.seed) == (12, 0.5, -3)


def test_drop_accepts_random() -> None:
    assert Behaviours().with_values({"drop": "random"}).drop == "random"


@pytest.mark.parametrize(
    ("key", "value"), [("drop_p", "1.5"), ("fail429", "-1"), ("rate", "fast"), ("cap", "0")]
)
def test_out_of_range_numbers_are_refused(key: str, value: str) -> None:
    with pytest.raises(BehaviourError, match=key):
        Behaviours().with_values({key: value})


def test_a_prefix_item_without_a_value_is_refused() -> None:
    with pytest.raises(BehaviourError, match="no value"):
        parse_segment("prefill")


def test_start_demo_server_refuses_unknown_behaviours() -> None:
    with pytest.raises(ValueError, match="prefil"):
        start_demo_server(prefil="ignored")
