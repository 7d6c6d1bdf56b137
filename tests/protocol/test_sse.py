"""Reading OpenAI streams: SSE framing, chunks of both kinds, and what is never guessed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import CloudUnavailable, UpstreamError
from protocol.sse import CompletionStream, SSEDecoder, error_for_status


def event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def raw(text: str | None = None, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text or "", "finish_reason": finish}
    return event({"id": "x", "object": "text_completion", "choices": [choice]})


STREAM = raw("Hello") + raw(" wor") + raw("ld", "length") + event(
    {"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                         "prompt_tokens_details": {"cached_tokens": 2}}}
) + b"data: [DONE]\n\n"  # fmt: skip


def test_a_whole_raw_stream() -> None:
    stream = CompletionStream("raw")
    assert stream.feed(STREAM) == ["Hello", " wor", "ld"]
    assert stream.done
    assert (stream.finish_reason, stream.note) == ("length", "")
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.completion_tokens) == (5, 3)
    assert stream.usage.cached_tokens == 2


@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=30).map(sorted))
def test_any_split_of_the_bytes_reads_the_same(cuts: list[int]) -> None:
    stream = CompletionStream("raw")
    texts = []
    for a, b in zip([0, *cuts], [*cuts, len(STREAM)]):
        texts += stream.feed(STREAM[a:b])
    assert texts == ["Hello", " wor", "ld"]
    assert stream.done


def test_chat_chunks_and_crlf_framing() -> None:
    delta = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                          "finish_reason": None}]}  # fmt: skip
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = (event(delta) + event(end)).replace(b"\n", b"\r\n") + b": keep-alive\r\n\r\n"
    stream = CompletionStream("chat")
    assert stream.feed(body) == ["Hi"]
    assert stream.finish_reason == "stop"
    assert stream.completion_tokens == 1  # no usage sent: pieces counted


def test_multi_line_data_is_joined() -> None:
    assert SSEDecoder().feed(b"data: {\ndata: 1}\n\n") == [b"{\n1}"]


@pytest.mark.parametrize(("finish", "note"), [(None, "no finish_reason"),
                                              ("content_filter", "content_filter")])  # fmt: skip
def test_an_unclear_finish_hands_back_and_says_so(finish: str | None, note: str) -> None:
    stream = CompletionStream("raw")
    stream.feed(raw("x", finish) + b"data: [DONE]\n\n")
    assert stream.finish_reason == "length"
    assert note in stream.note


@pytest.mark.parametrize(
    ("body", "complete"),
    [(raw("a") + raw("b"), False), (raw("a") + raw("b", "length"), True),
     (raw("a") + b"data: [DONE]\n\n", True)],
)  # fmt: skip
def test_a_stream_is_complete_only_when_the_server_says_so(body: bytes, complete: bool) -> None:
    stream = CompletionStream("raw")
    stream.feed(body)
    assert stream.complete == complete


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"data: {not json\n\n", "invalid stream chunk"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
        (event({"error": {"message": "model crashed", "type": "server_error"}}), "model crashed"),
    ],
)
def test_a_broken_stream_is_an_outage(body: bytes, message: str) -> None:
    stream = CompletionStream("raw")
    assert stream.feed(raw("kept")) == ["kept"]
    with pytest.raises(CloudUnavailable, match=message):
        stream.feed(body)


def test_error_statuses_carry_the_servers_reason() -> None:
    body = json.dumps({"error": {"message": "quota exceeded", "type": "x"}}).encode()
    limited = error_for_status(429, body, "http://h/v1/completions", retry_after="3")
    assert isinstance(limited, CloudUnavailable)
    assert limited.retry_after_s == 3.0
    assert "429: quota exceeded" in limited.message
    assert isinstance(error_for_status(503, b"busy", "u"), CloudUnavailable)
    refused = error_for_status(401, json.dumps({"error": "bad key"}).encode(), "http://h")
    assert isinstance(refused, UpstreamError)
    assert refused.message == "http://h answered 401: bad key"
    assert refused.status_code == 502  # our credentials were refused: a bad gateway for callers
    assert error_for_status(400, b"<html>oops</html>", "u").status_code == 400


def test_the_text_before_a_broken_event_is_yielded_before_its_error() -> None:
    stream = CompletionStream("raw")
    texts = stream.texts(raw("a") + raw("b") + b"data: {not json\n\n" + raw("c"))
    assert [next(texts), next(texts)] == ["a", "b"]
    with pytest.raises(CloudUnavailable, match="invalid stream chunk"):
        next(texts)
    assert stream.pieces == 2
