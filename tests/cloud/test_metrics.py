"""relay-cloud's /metrics, served for real: what it says equals what the state store billed,
each request counted once (a client that left too), behind the key unless made public."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.keyed import SECRETS, Setup, ask, serving, usage_of


def scrape(
    base: str, key: str | None = "carol"
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics``, parsed by prometheus-client's own parser."""
    headers = {"Authorization": f"Bearer {SECRETS[key]}"} if key else {}
    response = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_equal_what_the_store_billed(setup: Setup) -> None:
    with serving(setup) as base:
        assert ask(base, "alice", 60).status_code == 200
        assert ask(base, "alice", 60, stream=True).status_code == 200  # shrunk to what is left
        assert ask(base, "alice", 60).status_code == 429  # over tokens_per_day
        assert [ask(base, "bob", 1).status_code for _ in range(3)] == [200, 200, 429]
        assert ask(base, "wrong-key", 1).status_code == 401
        with httpx.stream("POST", f"{base}/v1/completions", timeout=30,
                          headers={"Authorization": f"Bearer {SECRETS['carol']}"},
                          json={"prompt": "Recite every word.", "max_tokens": 5000,
                                "stream": True}) as gone:  # fmt: skip
            next(gone.iter_lines())  # the client leaves after the first line
        samples = scrape(base)
        billed = usage_of(setup)
    model = next(
        labels for (name, labels) in samples if name == "relayllm_cloud_prompt_tokens_total"
    )
    model_name = dict(model)["model"]
    for key in ("alice", "bob", "carol"):
        use = billed[key]
        labels = {"key": key, "model": model_name}
        assert value(samples, "relayllm_cloud_prompt_tokens_total", **labels) == use.prompt_tokens
        assert (value(samples, "relayllm_cloud_completion_tokens_total", **labels)
                == use.completion_tokens)  # fmt: skip
        assert value(samples, "relayllm_cloud_budget_used", key=key, unit="tokens") == (
            use.completion_tokens  # what tokens_per_day counts
        )
    assert billed["carol"].completion_tokens > 0  # the client that left is billed what it got
    route = "/v1/completions"
    assert value(samples, "relayllm_cloud_requests_total", route=route, status="200",
                 key="alice") == 2  # fmt: skip
    assert value(samples, "relayllm_cloud_requests_total", route=route, status="429",
                 key="alice") == 1  # fmt: skip
    assert value(samples, "relayllm_cloud_requests_total", route=route, status="401",
                 key="none") == 1  # the key is never a label; a wrong one has no name  # fmt: skip
    assert value(samples, "relayllm_cloud_rate_limited_total", limit="tokens_per_day") == 1
    assert value(samples, "relayllm_cloud_rate_limited_total", limit="requests_per_minute") == 1
    left = value(samples, "relayllm_cloud_budget_left", key="alice", unit="tokens")
    assert left == 100 - billed["alice"].completion_tokens
    answered = value(samples, "relayllm_cloud_time_to_first_token_seconds_count",
                     model=model_name)  # fmt: skip
    # alice's and bob's four answers; carol's too if the engine finished before she left
    assert 4 <= answered <= 5
    assert value(samples, "relayllm_cloud_queue_depth") == 0
    assert not any(secret in repr(samples) for secret in SECRETS.values())


def test_metrics_want_the_key_unless_public(setup: Setup) -> None:
    with serving(setup) as base:
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        scrape(base, "bob")
    with serving(setup, "--api-keys-file", str(setup.keys), "--metrics-public") as base:
        samples = scrape(base, None)
        assert value(samples, "relayllm_cloud_queue_depth") == 0
