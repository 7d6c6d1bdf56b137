"""relay-cloud bounds every answer: a token cap, a deadline, a client that leaves, SIGTERM."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import relay_cloud, relay_cloud_process
from tests.stopping import assert_sigterm_stops_mid_answer

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"  # greedy: the count goes on and on
LONG = {"prompt": COUNTING, "max_tokens": 900, "temperature": 0}
QUICK = {"prompt": "Hello", "max_tokens": 4}


@pytest.fixture(scope="module")
def capped_url(cloud_model_path: Path) -> Iterator[str]:
    """An endpoint that answers at most 900 tokens and for at most 3 seconds."""
    with relay_cloud(
        "--model", str(cloud_model_path), "--insecure-no-auth", "--n-ctx", "1024",
        "--max-output-tokens", "900", "--request-timeout", "3",
    ) as base:  # fmt: skip
        yield base


def events(response: httpx.Response) -> Iterator[dict[str, object]]:
    for line in response.iter_lines():
        if line.startswith("data: {"):
            yield json.loads(line.removeprefix("data: "))


def quick_answer_s(base: str) -> float:
    """Seconds a 4-token completion takes: short only when the engine is free."""
    started = time.monotonic()
    response = httpx.post(f"{base}/v1/completions", json=QUICK, timeout=600)
    assert response.status_code == 200
    return time.monotonic() - started


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_asking_for_more_than_the_cap_is_400_naming_it(capped_url: str, field: str) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], field: 901}
    response = httpx.post(f"{capped_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "900" in error["message"]
    assert "--max-output-tokens" in error["message"]
    assert error["param"] == field


def test_an_answer_without_a_limit_gets_the_cap(capped_url: str) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 900}
    assert httpx.post(f"{capped_url}/v1/chat/completions", json=body, timeout=30).is_success


def test_the_deadline_ends_a_long_answer_with_length(capped_url: str) -> None:
    body = {**LONG, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{capped_url}/v1/completions", json=body, timeout=600) as response:
        chunks = list(events(response))
    finish = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]  # type: ignore[index]
    usage = chunks[-1]["usage"]
    assert finish[-1] == "length"
    # cut by the deadline, not at the cap (on a busy machine, maybe before its first token)
    assert usage["completion_tokens"] < 900  # type: ignore[index]


def test_a_client_that_leaves_stops_its_answer_and_sigterm_stops_the_server(
    cloud_model_path: Path,
) -> None:
    args = ("--model", str(cloud_model_path), "--insecure-no-auth", "--n-ctx", "1024",
            "--request-timeout", "3600")  # fmt: skip
    with relay_cloud_process(*args) as (base, process):
        url = f"{base}/v1/completions"
        started = time.monotonic()
        sample = httpx.post(url, json={**LONG, "max_tokens": 100}, timeout=600).json()
        assert sample["usage"]["completion_tokens"] == 100
        whole_s = (time.monotonic() - started) * 9  # this machine's time for a whole answer
        # a streamed answer under way, and a plain one waiting behind it whose client gives up
        with httpx.stream("POST", url, json={**LONG, "stream": True}, timeout=600) as streamed:
            next(streamed.iter_lines())
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url, json=LONG, timeout=1.5)
        assert quick_answer_s(base) < whole_s / 2  # neither the streamed nor the waiting one ran on
        with pytest.raises(httpx.ReadTimeout):  # a plain answer being generated, given up
            httpx.post(url, json=LONG, timeout=1.5)
        assert quick_answer_s(base) < whole_s / 2
        assert_sigterm_stops_mid_answer(process, url, LONG, "relay-cloud")
