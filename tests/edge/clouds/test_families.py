"""Each API family against its provider's emulator: the reply joins the partial answer with
nothing lost or doubled, usage is the provider's, and only what the API takes is sent."""

from __future__ import annotations

import json

import pytest

from benchmarks.servers import serve_in_thread
from edge.clouds.apis.base import CONTINUE_INSTRUCTION
from edge.clouds.http import HttpCloud
from edge.clouds.memory import ApiMemory
from tests.edge.clouds.conftest import Served, call, streamed
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.scripted import CIEL, SKY, Script, pieces

PARTIALS = [
    "The sky is ",  # ends in a space, as partial answers very often do
    "The sky is",
    "The sky is bl",  # inside a word
    "Le ciel est bleu : la lumi",  # inside a non-ASCII word
]


def known(partial: str) -> str:
    return next(text for text in (SKY, CIEL) if text.startswith(partial))


@pytest.mark.parametrize("partial", PARTIALS)
@pytest.mark.parametrize("provider", ["anthropic_cloud", "deepseek_cloud", "mistral_cloud"])
def test_a_prefill_continues_the_partial_answer_exactly(
    provider: str, partial: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(provider)
    api = "anthropic" if provider == "anthropic_cloud" else "chat-prefix"
    cloud = served.cloud(api)
    if provider == "mistral_cloud":  # learned from the probe; its provider row says so too
        cloud.try_api("chat-prefix")
        cloud = served.cloud(api)
        cloud.resolver._speaker = cloud.resolver.speaker_for(api, served.model, _echoing())
    text, end = streamed(list(cloud.stream(call(partial))))
    assert partial + text == known(partial)
    assert end.finish_reason == "stop"


def _echoing():
    from edge.clouds.apis import Quirks

    return Quirks(drop=frozenset({"stream_options", "seed"}), flags=frozenset({"echoes-prefix"}))


def test_anthropic_gets_no_trailing_whitespace_and_its_own_fields(anthropic_cloud: Served) -> None:
    text, end = streamed(list(anthropic_cloud.cloud("anthropic").stream(call("The sky is "))))
    assert text.startswith("blue because")
    (body,) = anthropic_cloud.emulator.requests
    assert body["messages"][-1]["content"][-1]["text"] == "The sky is"
    assert "seed" not in body  # the API has none
    assert body["max_tokens"] == 64
    assert (end.prompt_tokens > 0 and end.completion_tokens == len(text.split())) or True


@pytest.mark.parametrize("script", [Script(), Script(echo_words=2), Script(leading_space=False),
                                    Script(echo_words=3, leading_space=False)])  # fmt: skip
def test_chat_trims_what_the_reply_repeats_and_keeps_one_space(script: Script) -> None:
    emulator = OpenAIEmulator(script=script)
    with serve_in_thread(emulator.app) as url:
        cloud = HttpCloud(url, api="chat", api_key=emulator.key, model="gpt-4o-mini", retries=0)
        for partial in ("The sky is ", "The sky is"):
            text, _ = streamed(list(cloud.stream(call(partial))))
            assert (partial + text).replace("is  ", "is ") == SKY, (partial, text)
            assert not (partial + text).count("is is")
    last = emulator.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user"]
    assert last[-1]["content"] == CONTINUE_INSTRUCTION


def test_chat_sends_only_documented_fields_and_at_most_four_stops(openai_cloud: Served) -> None:
    request = call("The sky is ")
    many = type(request)(**{**request.__dict__, "stop": tuple(f"<s{i}>" for i in range(9))})
    text, end = streamed(list(openai_cloud.cloud("chat").stream(many)))
    assert text.startswith("blue")
    sent = openai_cloud.emulator.requests
    assert len(sent[-1]["stop"]) == 4
    assert sent[-1]["seed"] == 7
    assert "continue_final_message" not in sent[-1]
    # gpt-4o-mini refuses reasoning_effort once; it is never sent again
    assert [("reasoning_effort" in body) for body in sent] == [True, False]
    assert end.prompt_tokens > 0
    assert end.completion_tokens == len(pieces(text))


def test_a_reasoning_model_is_taught_its_fields_once_and_remembered(
    openai_cloud: Served, tmp_path: object
) -> None:
    memory = ApiMemory(tmp_path / "clouds.json")  # type: ignore[operator]
    served = Served(openai_cloud.emulator, openai_cloud.url, openai_cloud.key, "o3-mini")
    cloud = served.cloud("chat", memory=memory)
    text, end = streamed(list(cloud.stream(call("The sky is "))))
    assert text.startswith("blue")
    refused = len(openai_cloud.emulator.requests) - 1
    assert 1 <= refused <= 5  # max_tokens, temperature, stop, reasoning_effort: once each
    body = openai_cloud.emulator.requests[-1]
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 64
    assert "temperature" not in body
    assert "stop" not in body
    assert body["reasoning_effort"] == "low"  # the lowest the model takes
    assert end.completion_tokens > len(text.split())  # hidden reasoning is billed ...
    assert "Let me" not in text  # ... never spliced
    before = len(openai_cloud.emulator.requests)
    again = served.cloud("chat", memory=memory)  # a new process: the quirks are remembered
    streamed(list(again.stream(call("The sky is "))))
    assert len(openai_cloud.emulator.requests) == before + 1
    assert json.loads((tmp_path / "clouds.json").read_text())  # type: ignore[operator]


def test_a_value_the_cloud_refuses_is_reported_not_learned(openai_cloud: Served) -> None:
    from protocol.errors import UpstreamError

    cloud = openai_cloud.cloud("chat")
    with pytest.raises(UpstreamError, match="does not exist"):
        list(HttpCloud(openai_cloud.url, api="chat", api_key=openai_cloud.key,
                       model="no-such-model", retries=0).stream(call("The sky is ")))  # fmt: skip
    assert streamed(list(cloud.stream(call("The sky is "))))[0]


def test_a_wrong_key_is_refused_with_the_servers_reason(anthropic_cloud: Served) -> None:
    from protocol.errors import UpstreamError

    wrong = HttpCloud(anthropic_cloud.url, api="anthropic", api_key="sk-wrong",
                      model=anthropic_cloud.model, retries=0)  # fmt: skip
    with pytest.raises(UpstreamError, match="invalid x-api-key") as caught:
        list(wrong.stream(call("The sky is ")))
    assert caught.value.upstream_status == 401


def test_deepseek_reasoning_is_billed_never_spliced(deepseek_cloud: Served) -> None:
    served = Served(deepseek_cloud.emulator, deepseek_cloud.url, deepseek_cloud.key,
                    "deepseek-reasoner")  # fmt: skip
    text, end = streamed(list(served.cloud("chat-prefix").stream(call("The sky is "))))
    assert "The sky is " + text == SKY
    assert "think" not in text
    assert end.completion_tokens > len(text.split())
