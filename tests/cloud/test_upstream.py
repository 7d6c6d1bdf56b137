"""The upstream engine, pointed at a second relay-cloud, or at llama-cpp-python's own server."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edge.app.cloud_process import running
from tests.conftest import free_port, relay_cloud
from tests.faultproxy import Fault, FaultProxy

MODEL = "cloud-test"


@pytest.fixture(scope="module")
def front_url(cloud_url: str) -> Iterator[str]:
    with relay_cloud(
        "--upstream-url", f"{cloud_url}/v1", "--upstream-api-key", "key-a",
        "--api-key", "front-key",
    ) as base:  # fmt: skip
        yield base


def test_streams_through_the_upstream_with_usage(front_url: str) -> None:
    client = openai.OpenAI(base_url=f"{front_url}/v1", api_key="front-key", max_retries=0)
    assert [m.id for m in client.models.list()] == ["cloud-test"]
    stream = client.completions.create(
        model=MODEL,
        prompt="Once upon a time",
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert chunks[-2].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_upstream_and_direct_agree_at_temperature_zero(front_url: str, cloud_url: str) -> None:
    def greedy(base: str, key: str) -> str | None:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        chat = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "Count."},
                {"role": "assistant", "content": "One, two,"},
            ],
            max_tokens=5,
            temperature=0,
        )
        return chat.choices[0].message.content

    assert greedy(front_url, "front-key") == greedy(cloud_url, "key-b")


def test_front_keeps_its_own_auth(front_url: str) -> None:
    response = httpx.get(f"{front_url}/v1/models", headers={"Authorization": "Bearer key-a"})
    assert response.status_code == 401


def test_upstream_request_errors_pass_through(front_url: str) -> None:
    response = httpx.post(
        f"{front_url}/v1/completions",
        json={"prompt": "word " * 1500},
        headers={"Authorization": "Bearer front-key"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "1024" in response.json()["error"]["message"]


def test_dead_upstream_is_503() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with relay_cloud("--upstream-url", dead, "--upstream-model", "m", "--insecure-no-auth") as base:
        response = httpx.post(f"{base}/v1/completions", json={"prompt": "x"}, timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["message"]


def test_upstream_rejecting_our_key_is_502(cloud_url: str) -> None:
    args = ("--upstream-url", f"{cloud_url}/v1", "--upstream-model", "cloud-test")
    with relay_cloud(*args, "--upstream-api-key", "bad", "--insecure-no-auth") as base:
        response = httpx.post(f"{base}/v1/completions", json={"prompt": "x"}, timeout=30)
    assert response.status_code == 502


def test_an_upstream_llama_cpp_server_keeps_its_prompt_cache(
    slm_path: Path, tmp_path: Path
) -> None:
    """relay-cloud in front of llama-cpp-python's own server: a grown prompt reaches it as
    the same prefix, so only the new words are evaluated (its own log says how many; how
    much quicker that is, is a benchmark: ``upstream_prefix_reuse_time_ratio``)."""
    port = free_port()
    options = {"--model": str(slm_path), "--port": str(port), "--n_ctx": "2048",
               "--model_alias": "slm", "--n_threads": "2"}  # fmt: skip
    command = [sys.executable, "-m", "llama_cpp.server", *(x for o in options.items() for x in o)]
    log = tmp_path / "upstream.log"
    story = "The boats came in and went out again, and the town watched them. " * 25
    with (
        log.open("wb") as stderr,
        running(command, f"http://127.0.0.1:{port}/v1/models", stderr=stderr),
        relay_cloud("--upstream-url", f"http://127.0.0.1:{port}/v1", "--upstream-model", "slm",
                    "--insecure-no-auth") as front,
    ):  # fmt: skip
        for prompt in (story, story + " And then the harbour"):  # the relay's two calls
            body = {"prompt": prompt, "max_tokens": 2, "temperature": 0}
            assert httpx.post(f"{front}/v1/completions", json=body, timeout=120).status_code == 200
    hits = re.findall(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens", log.read_text())
    assert hits, log.read_text()[-2000:]
    reused, evaluated = map(int, hits[-1])
    assert reused > 300  # the story, kept
    assert evaluated < 10  # the new words only


@pytest.mark.parametrize("fault", ["cut-close", "invalid-json"])
def test_a_broken_upstream_stream_is_an_error_after_what_arrived(
    cloud_url: str, fault: Fault
) -> None:
    with FaultProxy(cloud_url) as proxy, relay_cloud(
        "--upstream-url", proxy.url, "--upstream-api-key", "key-a", "--insecure-no-auth",
    ) as front:  # fmt: skip
        proxy.fault = fault
        body = {"prompt": "Count: 1, 2, 3,", "max_tokens": 12, "stream": True, "temperature": 0}
        with httpx.stream("POST", f"{front}/v1/completions", json=body, timeout=60) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    texts = [json.loads(e)["choices"][0]["text"] for e in events if '"choices"' in e]
    assert "".join(texts) == proxy.forwarded_text  # what arrived before the fault is kept
    assert proxy.forwarded_pieces > 0
    assert "error" in json.loads(events[-2])  # then an error, never a quiet success
    assert events[-1] == "[DONE]"
