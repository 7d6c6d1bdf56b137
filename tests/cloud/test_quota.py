"""Per-key budgets and rates, served for real: 429s with Retry-After, shrinking, settling."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cloud.cli import app
from cloud.keys import hash_key
from cloud.state import KeyUsage, key_usage, open_store
from tests.keyed import LONG, SECRETS, Setup, ask, serving, usage_of


def assert_429(response: httpx.Response, limit: str, most_s: float) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "RateLimited")
    assert limit in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= most_s
    assert not any(secret in response.text for secret in SECRETS.values())


def test_over_the_request_rate_is_429_until_the_minute_has_passed(setup: Setup) -> None:
    with serving(setup) as base:
        assert [ask(base, "bob", 1).status_code for _ in range(2)] == [200, 200]
        assert_429(ask(base, "bob", 1), "requests_per_minute", 60)
        assert ask(base, "carol", 1).status_code == 200  # other keys are not affected


def test_a_budget_shrinks_max_tokens_then_refuses_and_survives_a_restart(setup: Setup) -> None:
    with serving(setup) as base:
        first = ask(base, "alice", 60).json()
        assert first["usage"]["total_tokens"] == 63
        streamed = ask(base, "alice", 60, stream=True)  # 100 - 60 generated tokens left
        assert '"completion_tokens":40' in streamed.text
        assert '"finish_reason":"length"' in streamed.text
        to_midnight = 86400 - time.time() % 86400
        assert_429(ask(base, "alice", 60), "tokens_per_day", to_midnight + 2)
    with serving(setup) as base:
        assert_429(ask(base, "alice", 1), "tokens_per_day", to_midnight + 2)
    alice = usage_of(setup)["alice"]
    assert (alice.requests, alice.prompt_tokens, alice.completion_tokens) == (2, 6, 100)
    assert alice.unsettled == 0
    table = CliRunner().invoke(app, ["usage", "--state-url", setup.state], terminal_width=200)
    assert "alice" in table.output
    assert SECRETS["alice"].encode() not in Path(setup.state.removeprefix("sqlite://")).read_bytes()


def test_a_dollar_budget_counts_at_the_key_prices(setup: Setup) -> None:
    with serving(setup) as base:
        assert ask(base, "dave", 80).json()["usage"]["completion_tokens"] == 50  # $0.00005
        assert_429(ask(base, "dave", 80), "usd_per_day", 86400)
    assert usage_of(setup)["dave"].usd == pytest.approx(0.00005)


def test_flags_set_the_limits_of_plain_and_anonymous_keys(setup: Setup) -> None:
    with serving(setup, "--api-key", "plain-secret", "--tokens-per-day", "40") as base:
        assert ask(base, "plain-secret", 50).json()["usage"]["completion_tokens"] == 40
        assert_429(ask(base, "plain-secret", 1), "tokens_per_day", 86400)
    with serving(setup, "--insecure-no-auth", "--requests-per-minute", "1") as base:
        assert ask(base, None, 5).status_code == 200
        assert_429(ask(base, None, 5), "requests_per_minute", 60)
    used = usage_of(setup)
    assert used["anonymous"].requests == 1
    assert [name for name in used if name.startswith("key-")] == [
        f"key-{hash_key('plain-secret')[7:15]}"
    ]


def test_an_abandoned_stream_is_settled_with_what_was_sent(setup: Setup) -> None:
    """Forwarded (the expert engine never pauses, so only a real stream can be cut short)."""
    body = {"prompt": LONG, "max_tokens": 200_000, "stream": True}
    headers = {"Authorization": f"Bearer {SECRETS['carol']}"}
    with serving(setup, "--insecure-no-auth") as expert, serving(setup, upstream=expert) as base:
        with httpx.stream("POST", f"{base}/v1/completions", json=body, headers=headers,
                          timeout=30) as response:  # fmt: skip
            lines = response.iter_lines()
            assert '"text"' in next(line for line in lines if line)  # then the client leaves
        store = open_store(setup.state)
        try:
            deadline = time.monotonic() + 30
            while (carol := _row(key_usage(store, "2000-01-01"), "carol")).unsettled:
                assert time.monotonic() < deadline, "the abandoned stream was never settled"
                time.sleep(0.1)
        finally:
            store.close()
    assert 0 < carol.completion_tokens < 200_000


def _row(rows: list[KeyUsage], key: str) -> KeyUsage:
    return next(row for row in rows if row.key == key)
