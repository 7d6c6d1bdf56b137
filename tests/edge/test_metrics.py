"""relay serve's /metrics, served for real: after answers with calls, failed calls, a budget
refusal and a 429, what Prometheus reads equals what the streams said and the ledger holds."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from edge.app.cloud_process import free_port
from edge.app.ledger import Ledger
from tests.edge.test_serve import serve

QUESTION = "Explain why the sea is salty."


def scrape(base: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, have), v in samples.items()
               if n == name and set(labels.items()) <= set(have))  # fmt: skip


def streamed(base: str, content: str = QUESTION) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The relay_call chunks and the usage of one streamed answer."""
    body = {"model": "relayllm", "messages": [{"role": "user", "content": content}],
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    calls, usage = [], {}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                if call := choice["delta"].get("relay_call"):
                    calls.append(call)
    return calls, usage


def ask(base: str, headers: dict[str, str], _: int) -> int:
    body = {"model": "relayllm", "messages": [{"role": "user", "content": QUESTION}]}
    post = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=120)
    return post.status_code


def test_metrics_say_what_the_answers_said_and_the_ledger_holds(
    slm_path: Path, cloud_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    env = {"RELAYLLM_MAX_TOKENS": "40", "RELAYLLM_ENTROPY_THRESHOLD": "0.5",
           "RELAYLLM_POLICY_CALL_TOKENS": "4", "RELAYLLM_CAPS__TOKENS_PER_DAY": "10",
           "RELAYLLM_LEDGER_PATH": str(ledger), "RELAYLLM_TEMPERATURE": "0"}  # fmt: skip
    args = ("--cloud-url", f"{cloud_url}/v1", "--cloud-key", "key-a", "--policy", "entropy")
    outcomes: Counter[str] = Counter()
    slm = llm = 0
    for base in serve(slm_path, tmp_path, *args, **env):
        for content in (QUESTION, "Name three rivers.", "Why do cats purr?"):
            calls, usage = streamed(base, content)
            outcomes.update(c["outcome"] for c in calls if c.get("outcome") in
                            ("ok", "fallback", "refused"))  # fmt: skip
            slm, llm = slm + usage["relay"]["slm_tokens"], llm + usage["relay"]["llm_tokens"]
        samples = scrape(base)
    assert outcomes["ok"] >= 1
    assert outcomes["refused"] >= 1  # the 10-token cap ran out
    for outcome in ("ok", "fallback", "refused"):
        assert total(samples, "relayllm_calls_total", outcome=outcome) == outcomes[outcome]
    assert total(samples, "relayllm_answers_total") == 3
    assert value(samples, "relayllm_tokens_total", source="slm") == slm
    assert value(samples, "relayllm_tokens_total", source="llm") == llm
    spent = Ledger(ledger).spend("day")
    assert value(samples, "relayllm_budget_used", cap="tokens_per_day", cloud="all") == spent.tokens
    assert value(samples, "relayllm_budget_left", cap="tokens_per_day", cloud="all") == max(
        0, 10 - spent.tokens
    )
    cloud = "127.0.0.1:" + cloud_url.rsplit(":", 1)[1]
    assert value(samples, "relayllm_call_seconds_count", cloud=cloud) == sum(outcomes.values())
    assert value(samples, "relayllm_call_first_token_seconds_count", cloud=cloud) <= outcomes["ok"]
    assert (
        value(
            samples,
            "relayllm_breaker_state",
            cloud=next(
                dict(labels)["cloud"] for (n, labels) in samples if n == "relayllm_breaker_state"
            ),
        )
        == 0
    )
    assert value(samples, "relayllm_queue_depth") == 0
    assert value(samples, "relayllm_queue_wait_seconds_count") == 3


def test_failed_calls_and_refused_requests_are_counted_once(slm_path: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = {"RELAYLLM_MAX_TOKENS": "24", "RELAYLLM_ENTROPY_THRESHOLD": "0.5",
           "RELAYLLM_POLICY_CALL_TOKENS": "4", "RELAYLLM_MAX_WAITING": "0",
           "RELAYLLM_RETRIES": "0"}  # fmt: skip
    for base in serve(slm_path, tmp_path, "--cloud-url", dead, "--policy", "entropy",
                      "--api-key", "edge-key", **env):  # fmt: skip
        headers = {"Authorization": "Bearer edge-key"}
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401  # the key rule
        with ThreadPoolExecutor(4) as pool:
            statuses = Counter(pool.map(partial(ask, base, headers), range(4)))
        samples = scrape(base, **headers)
        body = {"model": "relayllm", "messages": [{"role": "user", "content": QUESTION}],
                "stream": True, "max_tokens": 200}  # fmt: skip
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, headers=headers,
                          timeout=60) as left:  # fmt: skip
            next(left.iter_lines())  # the client leaves after the first chunk
        deadline = time.monotonic() + 10
        while (after := scrape(base, **headers))["relayllm_queue_depth", ()] and (
                time.monotonic() < deadline):  # fmt: skip
            time.sleep(0.1)
    # the answer that lost its client is not an answer, and nothing is counted twice
    assert total(after, "relayllm_answers_total") == total(samples, "relayllm_answers_total")
    assert value(after, "relayllm_queue_depth") == 0
    assert statuses[429] >= 1
    assert value(samples, "relayllm_requests_refused_total", reason="overloaded") == statuses[429]
    assert total(samples, "relayllm_answers_total") == statuses[200]
    failed = total(samples, "relayllm_calls_total", outcome="fallback")
    assert failed >= statuses[200]  # every answer's calls failed: none is counted twice
    assert value(samples, "relayllm_tokens_total", source="llm") == 0
