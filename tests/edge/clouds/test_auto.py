"""``cloud_api = "auto"``: known hosts by their family, any other URL probed once and
remembered per URL and model; outages are not remembered, an unusable cloud is not re-probed."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.servers import serve_in_thread
from edge.clouds.http import HttpCloud
from edge.clouds.memory import ApiMemory
from protocol.errors import CloudUnavailable, UpstreamError
from tests.conftest import free_port
from tests.edge.clouds.conftest import Served, call, streamed
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.scripted import Script


@pytest.mark.parametrize(
    ("url", "api", "name", "base"),
    [
        ("https://api.openai.com/v1", "chat", "openai", "https://api.openai.com/v1"),
        ("https://api.anthropic.com", "anthropic", "anthropic", "https://api.anthropic.com"),
        ("https://api.deepseek.com", "chat-prefix", "deepseek", "https://api.deepseek.com/beta"),
        ("https://api.mistral.ai/v1", "chat-prefix", "mistral", "https://api.mistral.ai/v1"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "chat", "gemini",
         "https://generativelanguage.googleapis.com/v1beta/openai"),
        ("https://api.groq.com/openai/v1", "chat", "groq", "https://api.groq.com/openai/v1"),
        ("https://openrouter.ai/api/v1", "chat", "openrouter", "https://openrouter.ai/api/v1"),
    ],
)  # fmt: skip
def test_known_hosts_need_no_probe(url: str, api: str, name: str, base: str) -> None:
    cloud = HttpCloud(url, api="auto", model="some-model")  # no socket is opened here
    speaker, target = cloud.speaker()
    found = (speaker.name, cloud.resolver.how, cloud.name, target.base_url)
    assert found == (api, "known host", name, base)


def test_known_hosts_start_with_what_their_reference_documents() -> None:
    openai = HttpCloud("https://api.openai.com/v1", api="auto", model="gpt-5").speaker()[1]
    assert openai.quirks.rename == {"max_tokens": "max_completion_tokens"}
    mistral = HttpCloud("https://api.mistral.ai/v1", api="auto", model="m").speaker()[1]
    assert mistral.quirks.rename == {"seed": "random_seed"}
    assert "echoes-prefix" in mistral.quirks.flags
    configured = HttpCloud("https://api.deepseek.com", api="chat", model="deepseek-chat")
    assert configured.speaker()[1].base_url == "https://api.deepseek.com"  # its own choice
    assert configured.resolver.how == "configured"


def test_a_probe_is_sent_once_per_url_and_model(tmp_path: Path, openai_cloud: Served) -> None:
    memory = ApiMemory(tmp_path / "clouds.json")
    first = openai_cloud.cloud(memory=memory)
    streamed(list(first.stream(call("The sky is "))))
    probes = len(openai_cloud.emulator.requests)
    assert first.resolver.how == "probed"
    assert probes >= 2  # refused families, then the probe that continued, then the call
    again = openai_cloud.cloud(memory=memory)
    streamed(list(again.stream(call("The sky is "))))
    assert len(openai_cloud.emulator.requests) == probes + 1
    assert again.resolver.api == "chat"
    other_model = Served(openai_cloud.emulator, openai_cloud.url, openai_cloud.key, "o3-mini")
    other_model.cloud(memory=memory).speaker()
    assert len(openai_cloud.emulator.requests) > probes + 1  # another model is probed anew


def test_an_outage_while_probing_is_not_remembered(tmp_path: Path) -> None:
    memory = ApiMemory(tmp_path / "clouds.json")
    dead = HttpCloud(f"http://127.0.0.1:{free_port()}/v1", api="auto", model="m", memory=memory,
                     retries=0)  # fmt: skip
    with pytest.raises(CloudUnavailable, match="cannot reach"):
        list(dead.stream(call("The sky is ")))
    assert not (tmp_path / "clouds.json").exists()


def test_a_cloud_that_continues_nothing_is_not_probed_twice() -> None:
    emulator = OpenAIEmulator(script=Script(texts=()))
    with serve_in_thread(emulator.app) as url:
        cloud = HttpCloud(url, api="auto", api_key=emulator.key, model="gpt-4o-mini", retries=0)
        with pytest.raises(UpstreamError, match="no API continues") as caught:
            list(cloud.stream(call("The sky is ")))
        assert "chat: answered anew" in caught.value.message
        sent = len(emulator.requests)
        with pytest.raises(UpstreamError, match="no API continues"):
            list(cloud.stream(call("The sky is ")))
        assert len(emulator.requests) == sent


def test_a_hosted_provider_must_be_told_which_model() -> None:
    cloud = HttpCloud("https://api.openai.com/v1", api="auto")
    with pytest.raises(UpstreamError, match="openai serves many models: name one"):
        cloud.speaker()  # said before any request is made
