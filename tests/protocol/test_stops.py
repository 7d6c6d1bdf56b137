"""StopMatcher: stop sequences split across pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol.stops import StopMatcher


def feed_all(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    shown = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        shown.append(text)
        if hit:
            return "".join(shown), True
    return "".join(shown) + matcher.flush(), False


def test_split_stop_is_found_and_dropped() -> None:
    assert feed_all(["Hello wo", "rld! more"], ["world"]) == ("Hello ", True)
    assert feed_all(["ab", "c"], ["zz"]) == ("abc", False)
    assert feed_all(["x\n", "\ny"], ["\n\n"]) == ("x", True)


@given(
    text=st.text(alphabet="abc", max_size=30),
    stop=st.text("abc", min_size=1, max_size=3),
    data=st.data(),
)
def test_output_is_the_text_before_first_stop(text: str, stop: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    shown, hit = feed_all(pieces, [stop])
    assert hit == (stop in text)
    assert shown == (text[: text.index(stop)] if hit else text)
