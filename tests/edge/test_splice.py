"""The splice: shown, kept and evaluated cloud text agree, whatever the pieces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.splice import Splice
from edge.llama import LlamaModel

TEXT = " The answer: 12 + 30 = 42 🙂, naïve café 日本語 — done.\n\tNext line <|im_end|> x"


def pieces(text: str) -> st.SearchStrategy[list[str]]:
    cuts = st.lists(st.integers(0, len(text)), max_size=30).map(sorted)
    return cuts.map(lambda c: [text[a:b] for a, b in zip([0, *c], [*c, len(text)])])


def test_streamed_tokens_then_the_end_give_the_whole_texts_tokens(slm: LlamaModel) -> None:
    @settings(max_examples=60, deadline=None)
    @given(parts=pieces(TEXT))
    def check(parts: list[str]) -> None:
        splice = Splice(slm, room=1000)
        context: list[int] = []  # what the SLM would have evaluated, as the relay does it
        for part in parts:
            assert splice.add(part) == part
            context = context[: splice.advance()]
            context += splice.tokens[len(context) :]
            assert context == splice.tokens
        final = splice.final()
        keep = next((i for i, (a, b) in enumerate(zip(context, final)) if a != b), len(context))
        context = context[:keep] + final[keep:]
        assert context == final == slm.tokenize(TEXT)

    check()


def test_text_past_the_room_is_cut_on_a_token_and_character_boundary(slm: LlamaModel) -> None:
    splice = Splice(slm, room=6)
    shown = "".join(splice.add(part) for part in ["Hello there", ", 🙂🙂🙂 friends", " more"])
    assert splice.full
    assert shown == splice.text
    assert len(splice.final()) <= 6
    assert slm.detokenize(splice.final()).decode() == shown
