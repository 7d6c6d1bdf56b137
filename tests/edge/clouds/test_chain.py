"""Several clouds in order: a cloud that fails before its first token is passed over (and
why is said), each cloud has its own breaker, budget, prices and ledger rows, and a call's
requests are bounded whatever the chain's length."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.servers import serve_in_thread
from edge.app.runtime import Relay, build_relay
from edge.app.settings import EdgeSettings
from edge.app.show import summary_line
from edge.llama import LlamaModel
from protocol.events import CallFinished, CloudSkipped, DoneEvent, RelayEvent
from tests.conftest import free_port
from tests.edge.clouds.conftest import Served
from tests.edge.conftest import ModelSpy, assert_consistent
from tests.emulators.openai import OpenAIEmulator

PREFIX = "The sky is <call>12</call>"


@pytest.fixture
def second_openai() -> Iterator[Served]:
    emulator = OpenAIEmulator(key="sk-second")
    with serve_in_thread(emulator.app) as url:
        yield Served(emulator, url, emulator.key, "gpt-4o-mini")


def cloud(served: Served, name: str, **more: Any) -> dict[str, Any]:
    return {"url": served.url, "key": served.key, "model": served.model, "name": name, **more}


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))

    def make(*clouds: dict[str, Any], **more: Any) -> EdgeSettings:
        return EdgeSettings(clouds=list(clouds), max_tokens=40, temperature=0, retries=2,
                            breaker_cooldown_s=60, policy="learned", **more)  # fmt: skip

    return make


def answer(relay: Relay, spy: ModelSpy | None = None) -> list[RelayEvent]:
    prompt = relay.prompt([{"role": "user", "content": "Why is the sky blue?"}])
    events = list(relay.answer(prompt, prefix=PREFIX))
    if spy is not None:
        assert_consistent(spy, relay.record, events)  # type: ignore[arg-type]
    return events


def skipped(events: list[RelayEvent]) -> list[tuple[str, str]]:
    return [(e.cloud, e.reason) for e in events if isinstance(e, CloudSkipped)]


def served_by(events: list[RelayEvent]) -> list[tuple[str, str]]:
    return [(e.cloud, e.outcome) for e in events if isinstance(e, CallFinished)]


def rows(settings: EdgeSettings) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.resolved_ledger_path()) as db:
        query = "SELECT account, completion_tokens, cost_usd, outcome FROM calls ORDER BY id"
        return db.execute(query).fetchall()


def test_a_dead_and_a_rate_limited_cloud_are_passed_over_then_cooled_down(
    slm: LlamaModel, settings_for: Any, openai_cloud: Served, anthropic_cloud: Served
) -> None:
    dead = {"url": f"http://127.0.0.1:{free_port()}/v1", "name": "dead", "model": "m",
            "cloud_api": "chat"}  # fmt: skip
    openai_cloud.emulator.rate_limited = 1
    openai_cloud.emulator.retry_after_s = 3600  # still cooling at the second answer on any machine
    settings = settings_for(dead, cloud(openai_cloud, "openai", cloud_api="chat"),
                            cloud(anthropic_cloud, "claude", cloud_api="anthropic"))  # fmt: skip
    spy = ModelSpy(slm)
    relay = build_relay(settings, model=spy)  # type: ignore[arg-type]
    first = answer(relay, spy)
    (dead_skip, limited_skip) = skipped(first)
    assert dead_skip[0] == "dead"
    assert "cannot reach" in dead_skip[1]
    assert limited_skip[0] == "openai"
    assert "answered 429" in limited_skip[1]
    assert served_by(first)[0] == ("claude", "ok")
    assert len(openai_cloud.emulator.requests) == 1  # a 429 is not retried when a cloud is next
    before = len(openai_cloud.emulator.requests)
    second = answer(relay, spy)
    assert [name for name, _ in skipped(second)][:2] == ["dead", "openai"]
    assert "cooling down" in skipped(second)[1][1]  # Retry-After: skipped without a request
    assert len(openai_cloud.emulator.requests) == before
    assert [c["breaker"] for c in relay.clouds][1] == "open"
    health = {c["name"]: c["last_error"] for c in relay.clouds}  # for /health and the page
    assert "cannot reach" in health["dead"]
    assert "answered 429" in health["openai"]  # its own last error, not the cool-down
    assert health["claude"] == ""
    ledger = rows(settings)
    assert [(cloud, outcome) for cloud, _, _, outcome in ledger[:3]] == [
        ("dead", "fallback"), ("openai", "fallback"), ("claude", "ok"),
    ]  # fmt: skip
    assert ledger[0][1] == ledger[1][1] == 0  # nothing billed that was not received
    done = next(e for e in second if isinstance(e, DoneEvent))
    from collections import Counter

    assert "via claude" in summary_line(done, Counter(ok=1), Counter(claude=1))


def test_a_failing_or_exhausted_cloud_is_passed_over(
    slm: LlamaModel, settings_for: Any, openai_cloud: Served, second_openai: Served
) -> None:
    openai_cloud.emulator.failing = 503
    failing = answer(build_relay(settings_for(
        cloud(openai_cloud, "first", cloud_api="chat"),
        cloud(second_openai, "second", cloud_api="chat"),
    ), model=slm))  # fmt: skip
    assert skipped(failing)[0][0] == "first"
    assert "answered 503" in skipped(failing)[0][1]
    assert served_by(failing) == [("second", "ok")]
    openai_cloud.emulator.failing = None
    capped = settings_for(
        cloud(openai_cloud, "first", cloud_api="chat", caps={"tokens_per_day": 0}),
        cloud(second_openai, "second", cloud_api="chat",
              prices={"prompt": 1.0, "completion": 2.0}),
    )  # fmt: skip
    before = len(openai_cloud.emulator.requests)
    events = answer(build_relay(capped, model=slm))
    assert skipped(events) == [("first", "budget exhausted (first daily token cap)")]
    assert len(openai_cloud.emulator.requests) == before  # refused before anything was sent
    assert not [e for e in events if e.type == "budget"]  # a cloud passed over shows nothing
    *_, refused, second = rows(capped)  # the same ledger: this answer's rows come last
    assert (refused[0], refused[3]) == ("first", "refused")
    assert (second[0], second[3]) == ("second", "ok")
    assert second[2] > 0  # billed at the second cloud's own prices


def test_a_call_makes_at_most_max_attempts_requests(
    slm: LlamaModel, settings_for: Any, openai_cloud: Served, second_openai: Served
) -> None:
    third = OpenAIEmulator(key="sk-third")
    for emulator in (openai_cloud.emulator, second_openai.emulator, third):
        emulator.failing = 500
    with serve_in_thread(third.app) as url:
        served = Served(third, url, third.key, "gpt-4o-mini")
        settings = settings_for(
            *(cloud(s, name, cloud_api="chat")
              for s, name in ((openai_cloud, "a"), (second_openai, "b"), (served, "c"))),
            max_attempts=2,
        )  # fmt: skip
        events = answer(build_relay(settings, model=slm))
    sent = [len(e.requests) for e in (openai_cloud.emulator, second_openai.emulator, third)]
    assert sent == [1, 1, 0]  # retries=2 each would have made 9
    assert served_by(events) == [("b", "fallback")]
    assert skipped(events)[0][0] == "a"


def test_one_cloud_behaves_as_before(
    slm: LlamaModel, settings_for: Any, openai_cloud: Served
) -> None:
    openai_cloud.emulator.rate_limited = 1
    openai_cloud.emulator.retry_after_s = 0.2
    events = answer(build_relay(settings_for(cloud(openai_cloud, "only", cloud_api="chat")),
                                model=slm))  # fmt: skip
    assert not skipped(events)
    assert served_by(events) == [("only", "ok")]  # the last cloud waits and retries
    # the 429, then gpt-4o-mini's refusal of reasoning_effort (learned), then the answer
    assert len(openai_cloud.emulator.requests) == 3


def test_relay_serve_says_which_cloud_served_and_which_were_passed_over(
    slm_path: Path, tmp_path: Path, openai_cloud: Served
) -> None:
    import httpx

    from tests.edge.test_serve import serve

    dead = f"http://127.0.0.1:{free_port()}/v1"
    flags = ("--cloud-url", dead, "--cloud-key", "k0", "--cloud-model", "m",
             "--cloud-url", openai_cloud.url, "--cloud-key", openai_cloud.key,
             "--cloud-model", openai_cloud.model, "--cloud-api", "chat", "--cloud-api", "chat",
             "--policy", "cloud", "--max-tokens", "12")  # fmt: skip
    with contextlib.contextmanager(serve)(slm_path, tmp_path, *flags) as base:
        health = httpx.get(f"{base}/health", timeout=30).json()
        body = {"model": "relayllm", "stream": True,
                "messages": [{"role": "user", "content": "Why is the sky blue?"}]}  # fmt: skip
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as reply:
            lines = [line for line in reply.iter_lines() if line.startswith("data: {")]
    first, second = health["cloud"]["clouds"]
    assert (first["reachable"], second["reachable"]) == (False, True)
    assert second["api"] == "chat"
    calls = [d["relay_call"] for d in _deltas(lines) if d.get("relay_call")]
    assert {"cloud_skipped"} <= {c.get("outcome") for c in calls}
    skipped_one = next(c for c in calls if c.get("outcome") == "cloud_skipped")
    assert skipped_one["cloud"] == dead.removeprefix("http://").removesuffix("/v1")
    ok = next(c for c in calls if c.get("outcome") == "ok")
    assert ok["cloud"] == second["name"]


def _deltas(lines: list[str]) -> list[dict[str, Any]]:
    import json

    chunks = [json.loads(line.removeprefix("data: ")) for line in lines]
    return [choice["delta"] for chunk in chunks for choice in chunk["choices"]]
