"""The call grammar: complete commands, the incremental scanner, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.calls import (
    CALL_OPEN,
    MAX_BODY_CHARS,
    CallCommand,
    CallScanner,
    Segment,
    cloud_view,
    format_call,
    malformed_commands,
    parse_calls,
    split_after_commands,
    split_calls,
    strip_calls,
)


def scan(pieces: list[str], max_n: int = 8192) -> list[Segment]:
    scanner = CallScanner(max_n)
    out: list[Segment] = []
    for piece in pieces:
        out += scanner.feed(piece)
    rest = scanner.flush()
    return [*out, rest] if rest else out


def rejoin(segments: list[Segment]) -> str:
    return "".join(s if isinstance(s, str) else s.raw for s in segments)


def commands(segments: list[Segment]) -> list[CallCommand]:
    return [s for s in segments if isinstance(s, CallCommand)]


@pytest.mark.parametrize(
    ("text", "n", "requested"),
    [
        ("<call>32</call>", 32, 32),
        ("<call> 7 </call>", 7, 7),
        ("<call>0</call>", 0, 0),
        ("<call></call>", 0, None),
        ("<call>\n12\n</call>", 12, 12),
        ("<call>99999999</call>", 8192, 99999999),
    ],
)
def test_complete_commands(text: str, n: int, requested: int | None) -> None:
    (command,) = parse_calls(f"before {text} after")
    assert (command.n, command.requested, command.raw) == (n, requested, text)
    assert command.is_call == (n > 0)


@pytest.mark.parametrize(
    "text",
    [
        "<call>abc</call>",
        "<call>",
        "<call>12",
        "<call>1 2</call>",
        "<call>-3</call>",
        "<cal",
        "a < b and c > d",
        "<call>" + " " * MAX_BODY_CHARS + "5</call>",
        "<<call>",
        "<call>\u0663</call>",  # ARABIC-INDIC DIGIT THREE: digits are ASCII only
        "<call>\uff15</call>",  # FULLWIDTH DIGIT FIVE
        "<call>\u00a05</call>",  # NO-BREAK SPACE is not the grammar's whitespace
    ],
)
def test_malformed_is_plain_text(text: str) -> None:
    assert split_calls(text) == [text]
    assert strip_calls(text) == text


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("The total is <call>284.</call> apples, then <call>16</call> more.", 1),
        ("<call>16</call><call>0</call><call></call><call> 7 </call>", 0),
        ("<call>abc</call> and <call>1 2</call> and <call>-3</call>", 3),
        ("<call>" + " " * MAX_BODY_CHARS + "5</call>", 1),  # too long to be a command
        ("<call>12 and never closed", 0),
        ("a < b and </call> alone", 0),
        ("", 0),
    ],
)
def test_malformed_commands_are_counted(text: str, count: int) -> None:
    assert malformed_commands(text) == count


def test_cap_is_configurable() -> None:
    assert parse_calls("<call>500</call>", max_n=64)[0].n == 64


def test_strip_and_format() -> None:
    text = f"a{format_call(4)}b<call>0</call>c"
    assert strip_calls(text) == "abc"
    assert strip_calls(text, " ") == "a b c"
    with pytest.raises(ValueError, match="non-negative"):
        format_call(-1)


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("is<call>8</call>the", "is the"),
        ("is <call>8</call> the", "is the"),
        ("is <call>8</call>", "is "),
        ("is<call>8</call>", "is "),
        ("a.\n<call>8</call>Next", "a.\nNext"),
        ("a.<call>8</call>\n\nNext", "a.\n\nNext"),
        ("<call>8</call>Hello", "Hello"),
        ("x<call>1</call><call>0</call>y", "x y"),
        ("naïve<call>2</call>日本", "naïve 日本"),
        ("no command", "no command"),
        ("", ""),
    ],
)
def test_the_cloud_sees_each_command_as_one_space(text: str, seen: str) -> None:
    assert cloud_view(text) == seen


@given(text=st.text(alphabet=st.sampled_from("ab \n<call>/0123"), max_size=60))
def test_cloud_view_never_holds_a_command(text: str) -> None:
    assert parse_calls(cloud_view(text)) == []


def test_partial_tag_is_held_back_then_reported_at_close() -> None:
    scanner = CallScanner()
    assert scanner.feed("Let me ask <ca") == ["Let me ask "]
    assert scanner.pending == "<ca"
    assert scanner.feed("ll>1") == []
    assert scanner.feed("6</cal") == []
    (command,) = scanner.feed("l>")
    assert command == CallCommand(n=16, requested=16, raw="<call>16</call>")
    assert scanner.feed(" done") == [" done"]


def test_text_after_close_in_same_piece_is_kept() -> None:
    assert scan(["x<call>3</call>y<call>4</call>"]) == [
        "x",
        CallCommand(3, 3, "<call>3</call>"),
        "y",
        CallCommand(4, 4, "<call>4</call>"),
    ]


def test_unclosed_tag_released_by_flush() -> None:
    scanner = CallScanner()
    assert scanner.feed("end <call>12") == ["end "]
    assert scanner.flush() == "<call>12"
    assert scanner.pending == ""


def test_tag_that_goes_wrong_is_released_as_text() -> None:
    scanner = CallScanner()
    assert scanner.feed("<call>1") == []
    assert scanner.feed("x</call>") == ["<call>1x</call>"]


def splits(text: str) -> st.SearchStrategy[list[str]]:
    """Every way to cut ``text`` into consecutive pieces."""
    cuts = st.lists(st.integers(0, len(text)), max_size=len(text)).map(sorted)
    return cuts.map(lambda c: [text[a:b] for a, b in zip([0, *c], [*c, len(text)])])


filler = st.text(alphabet=st.sampled_from("ab <>/\nlca1"), max_size=12).filter(
    lambda s: CALL_OPEN[:-1] not in s
)


@given(data=st.data(), before=filler, after=filler, n=st.integers(0, 10**6), pad=st.booleans())
def test_any_split_of_a_command_is_detected_exactly_once(
    data: st.DataObject, before: str, after: str, n: int, pad: bool
) -> None:
    tag = f"<call> {n} </call>" if pad else format_call(n)
    text = before + tag + after
    pieces = data.draw(splits(text))
    segments = scan(pieces)
    assert [c.raw for c in commands(segments)] == [tag]
    assert commands(segments)[0].n == min(n, 8192)
    assert rejoin(segments) == text


@given(pieces=st.lists(st.text(max_size=20), max_size=12))
def test_any_input_never_raises_and_loses_nothing(pieces: list[str]) -> None:
    segments = scan(pieces)
    assert rejoin(segments) == "".join(pieces)
    assert all(c.n <= 8192 for c in commands(segments))


@given(text=st.text(alphabet=st.sampled_from("<call>/0123456789 x"), max_size=60), data=st.data())
def test_pieces_agree_with_whole_text(text: str, data: st.DataObject) -> None:
    assert commands(scan(data.draw(splits(text)))) == commands(split_calls(text))


def merged(segments: list[Segment]) -> list[Segment]:
    """``segments`` with neighbouring text joined: how a piece boundary may not matter."""
    out: list[Segment] = []
    for segment in segments:
        if isinstance(segment, str) and out and isinstance(out[-1], str):
            out[-1] += segment
        elif segment != "":
            out.append(segment)
    return out


call_text = st.lists(
    st.one_of(st.text(max_size=6), st.sampled_from(
        ["<call>", "</call>", "<call>12</call>", "<call> 3 </call>", "<call></call>", "<call>0",
         "<", "</", "call>", "<call>99999", "\n"])),
    max_size=10,
).map("".join)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=call_text, data=st.data())
def test_any_split_of_any_text_gives_the_whole_texts_segments(
    text: str, data: st.DataObject
) -> None:
    whole = merged(scan([text]))
    assert merged(scan(data.draw(splits(text)))) == whole == merged(split_calls(text))


@given(before=filler, n=st.integers(0, 999), data=st.data())
def test_a_partial_command_is_never_shown(before: str, n: int, data: st.DataObject) -> None:
    tag = format_call(n)
    cut = data.draw(st.integers(1, len(tag) - 1))
    scanner = CallScanner()
    shown = [s for s in scanner.feed(before + tag[:cut]) if isinstance(s, str)]
    assert "".join(shown) == before
    assert scanner.pending == tag[:cut]


def test_split_after_commands_keeps_every_character() -> None:
    text = "a<call>3</call>. b<call></call>c"
    assert split_after_commands(text) == ["a<call>3</call>", ". b<call></call>", "c"]
    assert split_after_commands("<call>1</call>") == ["<call>1</call>"]
    assert split_after_commands("") == []
