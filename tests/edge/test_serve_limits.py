"""``relay serve`` bounds every answer and can require a key: a token cap, a deadline, a
client that leaves, SIGTERM, API keys, and no keyless listening off loopback."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from edge.app.cloud_process import free_port, running
from tests.conftest import BIN
from tests.stopping import assert_sigterm_stops_mid_answer

COUNT = [  # a final assistant message is continued: the SLM counts on to max_tokens
    {"role": "user", "content": "Count from 1 to 3000, separated by commas."},
    {"role": "assistant", "content": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"},
]
LONG = {"messages": COUNT, "max_tokens": 700, "temperature": 0}
QUICK = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
KEY = {"Authorization": "Bearer sk-edge"}


@contextmanager
def serving(
    slm_path: Path, tmp: Path, *args: str, max_output_tokens: int = 700
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``relay serve --offline ARGS`` on a free port."""
    port = free_port()
    env = {**os.environ, "RELAYLLM_DATA_DIR": str(tmp), "RELAYLLM_N_THREADS": "2",
           "RELAYLLM_CONFIG": str(tmp / "none.toml"), "RELAYLLM_N_CTX": "1024",
           "RELAYLLM_REPEAT_GUARD": "0"}  # fmt: skip
    command = [str(BIN / "relay"), "serve", "--port", str(port), "--slm", str(slm_path),
               "--offline", "--max-output-tokens", str(max_output_tokens), *args]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", env=env) as process:
        yield base, process


@pytest.fixture(scope="module")
def keyed_url(slm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """At most half a second an answer, key ``sk-edge`` wanted."""
    tmp = tmp_path_factory.mktemp("keyed")
    with serving(slm_path, tmp, "--api-key", "sk-edge", "--request-timeout", "0.5") as (base, _):
        yield base


def quick_answer_s(base: str) -> float:
    """Seconds a 4-token answer takes: short only when the model is free."""
    started = time.monotonic()
    response = httpx.post(f"{base}/v1/chat/completions", json=QUICK, headers=KEY, timeout=600)
    assert response.status_code == 200
    return time.monotonic() - started


def test_v1_routes_want_the_key_the_page_and_health_do_not(keyed_url: str) -> None:
    for path in ("/v1/models", "/v1/relay/status"):
        assert httpx.get(f"{keyed_url}{path}", headers=KEY).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sk-edge"}):
            refused = httpx.get(f"{keyed_url}{path}", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
    chat = httpx.post(f"{keyed_url}/v1/chat/completions", json=QUICK)
    assert chat.status_code == 401
    assert httpx.get(f"{keyed_url}/health").status_code == 200
    assert "relayllm-key" in httpx.get(keyed_url).text  # the page asks for the key on a 401


def test_asking_for_more_than_the_cap_is_400_naming_it(keyed_url: str) -> None:
    body = {**QUICK, "max_completion_tokens": 701}
    response = httpx.post(f"{keyed_url}/v1/chat/completions", json=body, headers=KEY)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "700" in error["message"]
    assert "--max-output-tokens" in error["message"]
    assert error["param"] == "max_completion_tokens"


def test_the_deadline_ends_a_long_answer_with_length(keyed_url: str) -> None:
    body = {**LONG, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{keyed_url}/v1/chat/completions", json=body, headers=KEY,
                      timeout=90) as response:  # fmt: skip
        chunks = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    finish = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert finish[-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] < 700  # cut by the deadline, not the cap


def test_a_client_that_leaves_stops_its_answer_and_sigterm_stops_the_server(
    slm_path: Path, tmp_path: Path
) -> None:
    with serving(slm_path, tmp_path, "--request-timeout", "3600") as (base, process):
        url = f"{base}/v1/chat/completions"
        started = time.monotonic()
        sample = httpx.post(url, json={**LONG, "max_tokens": 100}, timeout=600).json()
        assert sample["usage"]["completion_tokens"] == 100
        whole_s = (time.monotonic() - started) * 7  # this machine's time for the whole answer
        with pytest.raises(httpx.ReadTimeout):  # the same answer, given up
            httpx.post(url, json=LONG, timeout=0.3)
        assert quick_answer_s(base) < whole_s / 2  # it stopped: the model is free again
        assert_sigterm_stops_mid_answer(process, url, LONG, "relay serve")


def test_a_non_loopback_host_without_a_key_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "RELAYLLM_CONFIG": str(tmp_path / "none.toml")}
    command = [str(BIN / "relay"), "serve", "--host", "0.0.0.0", "--port", str(free_port())]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "0.0.0.0 is not a loopback address" in done.stderr
    assert "--api-key" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
