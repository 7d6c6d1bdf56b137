"""``relay serve`` through the openai SDK, httpx and a real browser, on real loopback servers."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edge.app.cloud_process import free_port, running
from tests.conftest import BIN

HANG_S = 600
"""Only a guard against a hang: an answer can take minutes on two busy cores."""
LONG = "Tell me a long story about a lighthouse keeper and the sea. " * 3


def serve(slm_path: Path, tmp: Path, *args: str, **env: str) -> Iterator[str]:
    port = free_port()
    base_env = {
        "RELAYLLM_DATA_DIR": str(tmp),
        "RELAYLLM_CONFIG": str(tmp / "none.toml"),
        "RELAYLLM_N_THREADS": "2",
        "RELAYLLM_N_CTX": "1024",
        **env,
    }
    command = [str(BIN / "relay"), "serve", "--port", str(port), "--slm", str(slm_path), *args]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", env={**os.environ, **base_env}):
        yield base


@pytest.fixture(scope="module")
def edge_url(
    slm_path: Path, cloud_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from serve(
        slm_path, tmp_path_factory.mktemp("edge"),
        "--cloud-url", f"{cloud_url}/v1", "--cloud-key", "key-a", "--policy", "entropy",
        RELAYLLM_MAX_TOKENS="48", RELAYLLM_CLOUD_TEMPERATURE="0", RELAYLLM_TEMPERATURE="0",
        RELAYLLM_ENTROPY_THRESHOLD="0.5", RELAYLLM_POLICY_CALL_TOKENS="4",
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(edge_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{edge_url}/v1", api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, content: str = "Hi!", **options: object) -> object:
    messages = [{"role": "user", "content": content}]
    return client.chat.completions.create(model="relayllm", messages=messages, **options)  # type: ignore[call-overload]


def test_streams_with_sources_calls_and_usage(client: openai.OpenAI) -> None:
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))  # type: ignore[call-overload]
    extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    assert {"slm", "llm"} <= {extra.get("relay_source") for extra in extras}
    calls = [extra["relay_call"] for extra in extras if extra.get("relay_call")]
    assert any(call.get("outcome") == "ok" for call in calls)
    started = {c["call_id"]: c for c in calls if c.get("outcome") is None}
    for ended in (c for c in calls if c.get("outcome") in ("ok", "fallback")):
        begun = started[ended["call_id"]]  # the end says what the start said
        assert (ended["requested"], ended["granted"]) == (begun["requested"], begun["granted"])
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    relay = (usage.model_extra or {})["relay"]  # type: ignore[union-attr]
    assert relay["slm_tokens"] + relay["llm_tokens"] == usage.completion_tokens  # type: ignore[union-attr]
    assert relay["calls"] >= 1


def test_request_parameters_are_honoured(client: openai.OpenAI) -> None:
    short = ask(client, max_tokens=5)
    assert short.usage.completion_tokens <= 5  # type: ignore[attr-defined]
    assert short.choices[0].finish_reason == "length"  # type: ignore[attr-defined]
    newer = ask(client, max_completion_tokens=3)
    assert newer.usage.completion_tokens <= 3  # type: ignore[attr-defined]
    seeded = [ask(client, LONG, temperature=1.2, seed=5, max_tokens=24) for _ in range(2)]
    texts = [r.choices[0].message.content for r in seeded]  # type: ignore[attr-defined]
    assert texts[0] == texts[1]
    full = ask(client, LONG, max_tokens=30).choices[0].message.content  # type: ignore[attr-defined]
    middle = full[len(full) // 2 : len(full) // 2 + 3]  # greedy: the same text comes again
    stopped = ask(client, LONG, max_tokens=30, stop=[middle])
    assert middle not in stopped.choices[0].message.content  # type: ignore[attr-defined]
    assert full.startswith(stopped.choices[0].message.content)  # type: ignore[attr-defined]
    assert stopped.choices[0].finish_reason == "stop"  # type: ignore[attr-defined]


def test_bad_requests_are_400_before_anything_streams(edge_url: str, client: openai.OpenAI) -> None:
    one = [{"role": "user", "content": "x"}]
    for body in ({"messages": []}, {"messages": one, "n": 2}, {"messages": one, "max_tokens": "x"}):
        response = httpx.post(f"{edge_url}/v1/chat/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["message"]
    huge = "word " * 3000  # the context holds 1024 tokens
    with pytest.raises(openai.BadRequestError, match="context holds 1024"):
        list(ask(client, huge, stream=True))  # type: ignore[call-overload]
    odd = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "logit_bias": {}}
    assert httpx.post(f"{edge_url}/v1/chat/completions", json=odd).status_code == 200


def test_a_final_assistant_message_is_continued(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name three colours."},
                {"role": "assistant", "content": "Red, green and"}]  # fmt: skip
    continued = client.chat.completions.create(model="relayllm", messages=messages, max_tokens=4)  # type: ignore[arg-type]
    answered = client.chat.completions.create(
        model="relayllm", messages=messages, max_tokens=4,  # type: ignore[arg-type]
        extra_body={"continue_final_message": False},
    )  # fmt: skip
    assert continued.choices[0].message.content != answered.choices[0].message.content


def test_models_and_health_say_what_is_relayed(edge_url: str, cloud_url: str) -> None:
    (card,) = httpx.get(f"{edge_url}/v1/models").json()["data"]
    assert card["id"] == "relayllm"
    assert card["relay"]["slm"].endswith(".gguf")
    assert card["relay"]["cloud_url"] == f"{cloud_url}/v1"
    assert card["relay"]["policy"] == "entropy"
    assert card["relay"]["policy_reason"] == "entropy 0.50 nats (set)"
    health = httpx.get(f"{edge_url}/health").json()
    assert health["cloud"]["reachable"] is True
    assert health["cloud"]["breaker"] == "closed"
    (cloud,) = health["cloud"]["clouds"]
    assert (cloud["breaker"], cloud["reachable"]) == ("closed", True)
    assert cloud["api"] in ("auto", "completions")  # found at the first call
    assert health["gpu"] == {"backend": "CPU", "gpu_layers": 0, "layers": 31,
                             "threads": health["gpu"]["threads"]}  # fmt: skip
    assert health["gpu"]["threads"] >= 1
    assert health["policy"] == "entropy"
    status = httpx.get(f"{edge_url}/v1/relay/status").json()
    assert status["gpu"] == health["gpu"]


def test_a_full_queue_answers_429_and_a_gone_client_frees_its_place(
    slm_path: Path, tmp_path: Path
) -> None:
    for base in serve(slm_path, tmp_path, "--offline", RELAYLLM_MAX_WAITING="0",
                      RELAYLLM_MAX_TOKENS="400", RELAYLLM_REPEAT_GUARD="0"):  # fmt: skip
        count = "Count from 1 to 300, separated by commas."  # a long answer for sure
        body = {"messages": [{"role": "user", "content": count}], "stream": True}
        url = f"{base}/v1/chat/completions"
        with (
            httpx.Client(timeout=HANG_S) as client,
            client.stream("POST", url, json=body) as response,
        ):
            lines = response.iter_lines()  # kept: a dropped iterator would close the stream
            next(lines)  # the first answer is under way
            busy = client.post(url, json=body)
            assert busy.status_code == 429
            assert int(busy.headers["retry-after"]) >= 1
            assert busy.json()["error"]["type"] == "rate_limit_error"
        # the first client left: once the server has seen it go, its place is free again
        # (that its generation stops is test_serve_limits' to check)
        deadline = time.monotonic() + HANG_S
        with httpx.Client(timeout=HANG_S) as client:
            while client.get(f"{base}/v1/relay/status").json()["waiting"]:
                assert time.monotonic() < deadline, "the client's place was never freed"
                time.sleep(0.05)
            quick = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            assert client.post(url, json=quick).status_code == 200


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None and not os.environ.get("RELAYLLM_CI"),
    reason="Debian's chromium is not installed here (.ci/run installs it)",
)
def test_the_page_shows_both_models_calls_and_the_meter(edge_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
        browser = playwright.chromium.launch(executable_path=chromium(), args=flags)
        try:
            page = browser.new_page()
            page.goto(edge_url)
            page.fill("#question", "Hi!")
            page.click("#send")
            page.wait_for_selector(".turn.answer .summary", timeout=HANG_S * 1000)
            assert page.locator(".turn.answer .slm").count() > 0
            assert page.locator(".turn.answer .llm").count() > 0
            badges = page.locator(".turn.answer .call").all_text_contents()
            assert any(b.startswith("call 4 →") and "ok" in b for b in badges)
            page.wait_for_function("Number(document.getElementById('meter-calls').textContent) > 0")
            assert int(page.inner_text("#meter-tokens")) > 0
            cloud = page.locator("#clouds .cloud")  # each cloud's health beside the meter
            assert cloud.count() == 1
            assert cloud.inner_text().endswith(" ok")  # in a user's words, not the breaker's
            assert cloud.get_attribute("title") == "calls go to this cloud; no error"
            summary = page.inner_text(".turn.answer .summary")
            calls = re.search(r"(\d+) (calls?),", summary)
            assert calls is not None, summary
            assert calls[2] == ("call" if calls[1] == "1" else "calls"), summary
        finally:
            browser.close()
