"""Faults between edge and cloud, through a fault-injecting proxy in front of a real relay-cloud.

The real SLM answers through the assembled :class:`edge.app.runtime.Relay` (fallback,
budget + ledger, breaker, audit, HTTP), forced to call by its prefix; the proxy
(:mod:`tests.faultproxy`) breaks the call in one way per case. Each case
checks that the answer completes, the events name the fault, the call ends
within the total timeout, and the ledger bills exactly the cloud text received.
The upstream is relay-cloud's expert engine: instant, so timings are the faults'.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.app.runtime import Relay, build_relay
from edge.app.settings import EdgeSettings
from edge.clouds.breaker import CircuitBreaker
from edge.llama import LlamaModel
from protocol.events import CallFinished, CallSkipped, CallStarted, DoneEvent, FallbackEvent
from tests.conftest import BIN, relay_cloud
from tests.edge.conftest import Events, of_type, shown_text
from tests.faultproxy import INJECTED_CALL, Fault, FaultProxy

QUESTION = "A farmer packs eggs into boxes of six. How many eggs fill two boxes?"
SOLUTION = (
    "Each box holds six eggs.\n"
    "So two boxes hold six eggs and then six more eggs, twelve in all: \\boxed{12}."
)
PREFIX = "Let me see. <call>8</call>"
TOTAL_S = 3.0
TIMING_SLACK_S = 0.5
SLM_SLACK_S = 2.0
"""The call's latency also holds the SLM evaluating what arrived (slow on a busy CPU)."""
RETRY_AFTER_S = 0.5


@pytest.fixture(scope="module")
def slm(slm_path: Path) -> Iterator[LlamaModel]:
    """The real SLM on one thread: short answers, and no spinning threads on a shared CPU."""
    model = LlamaModel(slm_path, n_ctx=1024, n_threads=1)
    yield model
    model.close()


@pytest.fixture(scope="module")
def expert_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problems = tmp_path_factory.mktemp("expert") / "problems.jsonl"
    problems.write_text(json.dumps({"question": QUESTION, "answer": "12", "solution": SOLUTION}))
    args = ("--engine", "expert", "--problems", str(problems), "--model-id", "expert")
    with relay_cloud(*args, "--insecure-no-auth") as base:
        yield base


@pytest.fixture(scope="module")
def proxy(expert_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(expert_url, retry_after_s=RETRY_AFTER_S) as proxy:
        yield proxy


@pytest.fixture
def healthy(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy with its counts at zero, healthy again after the test."""
    proxy.reset()
    yield proxy
    proxy.fault = "none"
    proxy.retry_after_s = RETRY_AFTER_S


@pytest.fixture
def settings(healthy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EdgeSettings:
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    return EdgeSettings(
        cloud_url=healthy.url, cloud_model="expert", cloud_api="completions", max_tokens=24,
        temperature=0, policy="learned",
        connect_timeout_s=1.0, first_token_timeout_s=1.5, total_timeout_s=TOTAL_S, retries=1,
        breaker_failures=2, ledger_path=tmp_path / "ledger.sqlite3",
    )  # fmt: skip


def answer(relay: Relay) -> Events:
    prompt = relay.prompt([{"role": "user", "content": QUESTION}])
    return list(relay.answer(prompt, prefix=PREFIX))


def billed(settings: EdgeSettings) -> list[tuple[int, str]]:
    """The ledger's rows: completion tokens and outcome of each call."""
    with sqlite3.connect(settings.resolved_ledger_path()) as db:
        return db.execute("SELECT completion_tokens, outcome FROM calls ORDER BY id").fetchall()


def local_after_call(events: Events) -> str:
    finished = next(i for i, e in enumerate(events) if isinstance(e, CallFinished))
    return shown_text(events[finished:], "slm")


FAULTS: list[tuple[Fault, str, int, int]] = [
    # (fault, what the fallback reason says, requests that reach the proxy, pieces kept)
    ("refuse", r"cannot reach .*refused", 0, 0),
    ("stall-headers", r"longer than 3 s: .* did not answer in time", 2, 0),
    ("stall-mid", r"stream from .* stalled", 1, 3),
    ("cut-mid", r"connection to .* was cut", 1, 3),
    ("cut-close", r"stream from .* ended before it was complete", 1, 3),
    ("invalid-json", r"invalid stream chunk", 1, 3),
    ("429", r"answered 429: rate limit", 2, 0),
    ("500", r"answered 500", 2, 0),
    ("503", r"answered 503", 2, 0),
    ("drip", r"longer than 3 s: the stream from .* arrived too slowly", 1, 0),
]


@pytest.mark.parametrize(
    ("fault", "reason", "requests", "kept"), FAULTS, ids=[f[0] for f in FAULTS]
)
def test_a_fault_falls_back_bills_what_arrived_and_the_slm_goes_on(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy, fault: Fault, reason: str,
    requests: int, kept: int,
) -> None:  # fmt: skip
    healthy.fault = fault
    events = answer(build_relay(settings, model=slm))
    (fallback,) = of_type(events, FallbackEvent)
    (finished,) = of_type(events, CallFinished)
    assert re.search(reason, fallback.reason), fallback.reason
    assert "cannot reach" not in fallback.reason or fault == "refuse"
    assert finished.outcome == "fallback"
    assert healthy.completions == requests
    assert healthy.busy_s <= TOTAL_S + TIMING_SLACK_S  # the edge gave up in time ...
    assert finished.latency_ms / 1000 <= TOTAL_S + SLM_SLACK_S  # ... and so did the call
    if fault == "429":
        assert healthy.busy_s >= RETRY_AFTER_S  # the retry waited as the server asked
    # What the proxy let through is exactly what was shown, spliced and billed.
    received = shown_text(events, "llm")
    assert received == healthy.forwarded_text
    assert fallback.kept_tokens == finished.tokens == len(slm.tokenize(received))
    assert billed(settings) == [(healthy.forwarded_pieces, "fallback")] == [(kept, "fallback")]
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].llm_tokens == finished.tokens
    assert local_after_call(events).strip()  # the SLM went on alone


def test_a_stream_still_arriving_at_the_deadline_ends_at_it(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy
) -> None:
    healthy.drip_interval_s = 1.4  # each byte just inside the read timeout (1.5 s)
    healthy.fault = "drip"
    try:
        events = answer(build_relay(settings, model=slm))
    finally:
        healthy.drip_interval_s = 1.0
    (fallback,) = of_type(events, FallbackEvent)
    assert "longer than 3 s" in fallback.reason
    (finished,) = of_type(events, CallFinished)
    assert finished.tokens == 0
    assert finished.latency_ms / 1000 <= TOTAL_S + TIMING_SLACK_S  # not at the next byte (4.2 s)


@pytest.mark.parametrize("fault", ["none", "malformed-sse"])
def test_a_healthy_stream_is_spliced_and_billed_whole(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy, fault: Fault
) -> None:
    healthy.fault = fault  # lines that are no SSE event are skipped, as the format says
    relay = build_relay(settings, model=slm)
    events = answer(relay)
    (finished,) = of_type(events, CallFinished)
    assert not of_type(events, FallbackEvent)
    assert (finished.outcome, finished.finish_reason) == ("ok", "length")
    assert shown_text(events, "llm") == healthy.forwarded_text != ""
    assert billed(settings) == [(healthy.forwarded_pieces, "ok")] == [(8, "ok")]
    record = relay.record
    assert record is not None
    assert record.mask.count(0) == finished.tokens == len(slm.tokenize(healthy.forwarded_text))
    assert local_after_call(events)


def test_a_retry_after_past_the_deadline_fails_at_once(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy
) -> None:
    healthy.fault, healthy.retry_after_s = "429", 30.0
    events = answer(build_relay(settings, model=slm))
    (fallback,) = of_type(events, FallbackEvent)
    assert "answered 429: rate limit" in fallback.reason
    assert healthy.completions == 1  # no retry that could not finish in time
    assert healthy.busy_s < 1.0  # and no waiting for the whole total timeout
    assert isinstance(events[-1], DoneEvent)


def test_the_breaker_opens_skips_the_cloud_and_recovers(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy
) -> None:
    settings = settings.model_copy(update={"retries": 0, "breaker_cooldown_s": 600.0})
    relay = build_relay(settings, model=slm)
    healthy.fault = "503"
    reasons = [fallback_reason(answer(relay)) for _ in range(3)]
    assert ["answered 503" in r for r in reasons] == [True, True, False]
    assert reasons[2].startswith("circuit open: cloud skipped for")
    assert healthy.completions == 2  # the open breaker kept the third call off the network
    assert relay.breaker_state == "open"
    healthy.fault = "none"
    breaker_of(relay).cooldown_s = 0.0  # as if the cooldown had passed
    assert relay.breaker_state == "half-open"
    events = answer(relay)  # the probe
    assert [e.outcome for e in events if isinstance(e, CallFinished)] == ["ok"]
    assert relay.breaker_state == "closed"
    assert healthy.completions == 3
    # the skipped call left no row: an open breaker refuses before the budget reserves
    assert [row[1] for row in billed(settings)] == ["fallback"] * 2 + ["ok"]


def breaker_of(relay: Relay) -> CircuitBreaker:
    return relay.loop.cloud.clouds[0].breaker  # type: ignore[attr-defined]


def fallback_reason(events: Events) -> str:
    (fallback,) = of_type(events, FallbackEvent)
    return fallback.reason


def test_cloud_text_holding_a_command_never_calls(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy
) -> None:
    healthy.fault = "inject-call"
    relay = build_relay(settings.model_copy(update={"max_tokens": 40}), model=slm)
    events = answer(relay)
    assert len(of_type(events, CallStarted)) == 1
    assert not of_type(events, CallSkipped)  # not even seen as a command
    assert healthy.completions == 1
    text = shown_text(events, "llm")
    assert INJECTED_CALL in text
    assert text == healthy.forwarded_text
    record = relay.record
    assert record is not None
    assert PREFIX + text in record.text  # spliced as the cloud's plain text
    (finished,) = of_type(events, CallFinished)
    assert record.mask.count(0) == finished.tokens == len(slm.tokenize(text))
    assert billed(settings) == [(healthy.forwarded_pieces, "ok")]  # the cloud's own count


def test_relay_run_answers_through_a_cut_stream(
    slm_path: Path, settings: EdgeSettings, healthy: FaultProxy, tmp_path: Path
) -> None:
    healthy.fault = "cut-mid"
    env = {**os.environ, "RELAYLLM_TOTAL_TIMEOUT_S": str(TOTAL_S), "RELAYLLM_N_THREADS": "1",
           "RELAYLLM_N_CTX": "1024", "RELAYLLM_LEDGER_PATH": str(settings.ledger_path)}  # fmt: skip
    args = [str(BIN / "relay"), "run", QUESTION, "--slm", str(slm_path), "--cloud-url",
            healthy.url, "--cloud-model", "expert", "--max-tokens", "24", "--seed", "1",
            "--temperature", "0", "--prefix", PREFIX, "--policy", "learned"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"cloud call failed \(kept 3 cloud tokens\): the connection .* was cut",
                     done.stderr)  # fmt: skip
    assert "Let me see. " + healthy.forwarded_text + " " in done.stdout  # and went on
    assert "calls 1 failed" in done.stdout
    assert billed(settings) == [(healthy.forwarded_pieces, "fallback")] == [(3, "fallback")]


def test_a_cloud_with_its_own_short_wait_is_passed_over_for_the_next(
    slm: LlamaModel, settings: EdgeSettings, healthy: FaultProxy, expert_url: str
) -> None:
    """The stalled cloud's own first-token timeout (not the global 20 s) decides when the call
    moves on to the next cloud."""
    healthy.fault = "stall-headers"
    clouds = [{"url": healthy.url, "name": "stalled", "model": "expert", "cloud_api": "completions",
               "first_token_timeout_s": 0.5, "retries": 0},
              {"url": f"{expert_url}/v1", "name": "next", "model": "expert",
               "cloud_api": "completions"}]  # fmt: skip
    patient = settings.model_copy(update={"first_token_timeout_s": 20.0, "total_timeout_s": 30.0})
    chained = EdgeSettings(**{**patient.model_dump(exclude={"clouds"}), "clouds": clouds})
    events = answer(build_relay(chained, model=slm))
    (finished,) = of_type(events, CallFinished)
    assert (finished.outcome, finished.cloud) == ("ok", "next")
    assert finished.latency_ms < 5000  # the half-second wait, not the global 20 s
