"""Structured logs of both servers, served for real: ``--log-format json`` writes one object a
line; every request has an id, returned in X-Request-ID and in error bodies, and its line says
route, status, latency, key name and tokens."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from edge.app.cloud_process import free_port
from tests.conftest import BIN
from tests.keyed import SECRETS, Setup


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def served_log(command: list[str], tmp_path: Path, requests: Any) -> str:
    """Run a server with ``command`` (its port last), make ``requests(base)``, stop it; its
    stderr."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    env = {**os.environ, "RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_N_THREADS": "2",
           "RELAYLLM_CONFIG": str(tmp_path / "none.toml")}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as stderr:
        process = subprocess.Popen([*command, str(port)], env=env, stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while not ready(f"{base}/health"):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            requests(base)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return log.read_text()


def served_lines(command: list[str], tmp_path: Path, requests: Any) -> list[dict[str, Any]]:
    """:func:`served_log`'s lines, parsed (every line that is not llama.cpp's own is JSON)."""
    log = served_log(command, tmp_path, requests)
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_relay_cloud_logs_one_json_object_per_request(setup: Setup, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def requests(base: str) -> None:
        good = httpx.post(f"{base}/v1/completions", timeout=30,
                          headers={"Authorization": f"Bearer {SECRETS['carol']}",
                                   "X-Request-ID": "client-trace-7"},
                          json={"prompt": "Count the words.", "max_tokens": 5})  # fmt: skip
        seen["good"] = good
        seen["bad"] = httpx.get(f"{base}/v1/models", headers={"X-Request-ID": "bad id!"})

    command = [str(BIN / "relay-cloud"), "serve", "--engine", "expert", "--problems",
               str(setup.problems), "--api-keys-file", str(setup.keys), "--state-url", setup.state,
               "--log-format", "json", "--port"]  # fmt: skip
    lines = served_lines(command, tmp_path, requests)
    assert seen["good"].headers["x-request-id"] == "client-trace-7"  # the client's own id
    bad_id = seen["bad"].headers["x-request-id"]
    assert bad_id.startswith("req-")  # an id that is not a plain token is replaced
    assert seen["bad"].json()["error"]["request_id"] == bad_id
    access = {line["request_id"]: line for line in lines if line["logger"] == "relayllm.access"}
    good = access["client-trace-7"]
    usage = seen["good"].json()["usage"]
    assert (good["route"], good["status"], good["key"]) == ("/v1/completions", 200, "carol")
    assert (good["prompt_tokens"], good["completion_tokens"]) == (
        usage["prompt_tokens"], usage["completion_tokens"])  # fmt: skip
    assert good["latency_ms"] > 0
    assert (access[bad_id]["status"], access[bad_id].get("key")) == (401, None)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert not any(secret in json.dumps(lines) for secret in SECRETS.values())


def test_relay_serve_logs_its_answers(slm_path: Path, tmp_path: Path) -> None:
    answered: dict[str, Any] = {}

    def requests(base: str) -> None:
        body = {"model": "relayllm", "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
        answered["reply"] = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)

    # a line per request by default: no --log-level
    command = [str(BIN / "relay"), "serve", "--slm", str(slm_path), "--offline",
               "--log-format", "json", "--port"]  # fmt: skip
    lines = served_lines(command, tmp_path, requests)
    reply = answered["reply"]
    (line,) = [x for x in lines if x.get("request_id") == reply.headers["x-request-id"]]
    relay = reply.json()["usage"]["relay"]
    assert (line["route"], line["status"]) == ("/v1/chat/completions", 200)
    assert (line["slm_tokens"], line["llm_tokens"]) == (relay["slm_tokens"], relay["llm_tokens"])


def test_both_servers_log_a_text_line_per_request_by_default(
    slm_path: Path, setup: Setup, tmp_path: Path
) -> None:
    def requests(base: str) -> None:
        headers = {"X-Request-ID": "plain-7", "Authorization": f"Bearer {SECRETS['carol']}"}
        httpx.get(f"{base}/v1/models", headers=headers, timeout=30).raise_for_status()

    edge = [str(BIN / "relay"), "serve", "--slm", str(slm_path), "--offline", "--port"]
    cloud = [str(BIN / "relay-cloud"), "serve", "--engine", "expert", "--problems",
             str(setup.problems), "--api-keys-file", str(setup.keys), "--state-url", setup.state,
             "--port"]  # fmt: skip
    for command in (edge, cloud):
        log = served_log(command, tmp_path, requests)
        (line,) = [line for line in log.splitlines() if "request_id=plain-7" in line]
        assert line.startswith("INFO: GET /v1/models 200"), line
