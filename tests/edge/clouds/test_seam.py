"""Where a reply meets the partial answer: nothing lost, nothing doubled, however it streams."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from edge.clouds.seam import Seam
from tests.emulators.scripted import CIEL, SKY

TEXTS = st.sampled_from([SKY, CIEL, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.", "a  b\n\nc d "])


def joined(seam: Seam, reply: str, cuts: list[int]) -> str:
    """``reply`` fed to ``seam`` in pieces cut at ``cuts``, then flushed."""
    bounds = [0, *sorted({c % (len(reply) + 1) for c in cuts}), len(reply)]
    shown = [seam.feed(reply[a:b]) for a, b in pairwise(bounds)]
    return "".join(shown) + seam.flush()


@given(TEXTS, st.integers(0, 200), st.lists(st.integers(0, 200), max_size=8))
def test_a_stripped_prefill_joins_exactly(text: str, at: int, cuts: list[int]) -> None:
    partial = text[: at % (len(text) + 1)]
    sent = partial.rstrip()  # what Anthropic may be given
    reply = text[len(sent) :]  # the model continues what it was given
    assert partial + joined(Seam.after_stripped(partial[len(sent) :]), reply, cuts) == text


@given(TEXTS, st.integers(1, 200), st.lists(st.integers(0, 200), max_size=8))
def test_an_echoed_prefix_is_dropped(text: str, at: int, cuts: list[int]) -> None:
    partial = text[: at % len(text) + 1]
    reply = text  # the prefix, then its continuation
    assert partial + joined(Seam.after_prefix(partial), reply, cuts) == text


def test_a_reply_cut_inside_the_echo_adds_nothing() -> None:
    seam = Seam.after_prefix("The sky is ")
    assert seam.feed("The") == ""
    assert seam.feed(" sky") == ""
    assert seam.flush() == ""


@given(st.integers(0, 4), st.booleans(), st.lists(st.integers(0, 120), max_size=6))
def test_repeated_words_are_trimmed_and_one_space_kept(
    words: int, space: bool, cuts: list[int]
) -> None:
    partial = "The sky is blue because"
    rest = " sunlight is scattered."
    echo = " ".join(partial.split()[-words:]) if words else ""
    reply = echo + rest if space else (echo + rest).lstrip()
    assert partial + joined(Seam.after_answer(partial), reply, cuts) == partial + rest


def test_a_reply_after_a_space_gets_none_more() -> None:
    assert joined(Seam.after_answer("The sky is "), " blue.", []) == "blue."
    assert joined(Seam.after_answer("The sky is "), "is blue.", []) == "blue."


def test_the_whole_answer_repeated_is_trimmed() -> None:
    partial = "The sky is blue because"
    assert joined(Seam.after_answer(partial), partial + " sunlight.", [3, 9]) == " sunlight."


def test_a_word_that_only_starts_like_the_last_one_is_kept() -> None:
    # "in the" + "theory": a new word, not a repeat of "the"
    assert joined(Seam.after_answer("Einstein wrote the"), "theory of it.", []) == " theory of it."


def test_punctuation_and_scripts_without_spaces() -> None:
    assert joined(Seam.after_answer("It is blue"), ", mostly.", []) == ", mostly."
    assert joined(Seam.after_answer("1, 2,"), "3, 4", []) == " 3, 4"
    assert joined(Seam.after_answer("天空是"), "蓝色的。", []) == "蓝色的。"
    assert joined(Seam.after_answer('He said "'), "yes", []) == "yes"


def test_a_reply_of_only_a_repeat_adds_nothing() -> None:
    assert joined(Seam.after_answer("The sky is blue"), "is blue", []) == ""
