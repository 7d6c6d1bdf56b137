"""A real Prometheus server (Debian's package, on loopback) scrapes relay serve and relay-cloud:
both targets are up and its query API returns the series the servers export, with their values."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from edge.app.cloud_process import free_port, running
from tests.cloud.test_metrics import scrape as scrape_cloud
from tests.edge.test_metrics import scrape as scrape_edge
from tests.edge.test_metrics import streamed, total
from tests.edge.test_serve import serve
from tests.keyed import SECRETS, Setup, ask, serving

CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: relay-cloud
    authorization:
      credentials: {key}
    static_configs:
      - targets: ["{cloud}"]
  - job_name: relay-serve
    static_configs:
      - targets: ["{edge}"]
"""


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "Prometheus is not installed; apt-get install prometheus"
        if os.environ.get("RELAYLLM_CI") == "1":
            pytest.fail(reason + " (.ci/run installs it)")
        pytest.skip(reason)
    return found


def query(prometheus: str, promql: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["result"]


def test_prometheus_scrapes_both_servers(setup: Setup, slm_path: Path, tmp_path: Path) -> None:
    binary = prometheus_binary()
    with serving(setup) as cloud:
        assert ask(cloud, "alice", 20).status_code == 200
        for edge in serve(slm_path, tmp_path / "edge", "--cloud-url", f"{cloud}/v1",
                          "--cloud-key", SECRETS["carol"], "--policy", "entropy",
                          RELAYLLM_ENTROPY_THRESHOLD="0.5", RELAYLLM_MAX_TOKENS="24",
                          RELAYLLM_POLICY_CALL_TOKENS="4"):  # fmt: skip
            streamed(edge)
            port = free_port()
            config = tmp_path / "prometheus.yml"
            config.write_text(CONFIG.format(key=SECRETS["bob"], cloud=cloud.removeprefix(
                "http://"), edge=edge.removeprefix("http://")))  # fmt: skip
            command = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'db'}",
                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
            prometheus = f"http://127.0.0.1:{port}"
            with running(command, f"{prometheus}/-/ready", quiet=True, timeout_s=60):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(query(prometheus, "up == 1")) < 2:
                    time.sleep(0.5)
                up = {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}
                assert up == {"relay-cloud": "1", "relay-serve": "1"}
                time.sleep(2.5)  # a scrape after the last request
                served = scrape_cloud(cloud, "bob")
                answered = scrape_edge(edge)
                tokens = query(prometheus, 'relayllm_cloud_completion_tokens_total{key="alice"}')
                assert [float(r["value"][1]) for r in tokens] == [
                    total(served, "relayllm_cloud_completion_tokens_total", key="alice")
                ]
                share = query(prometheus, 'sum(relayllm_tokens_total{source="llm"}) / '
                                          "sum(relayllm_tokens_total)")  # fmt: skip
                llm = total(answered, "relayllm_tokens_total", source="llm")
                every = total(answered, "relayllm_tokens_total")
                assert float(share[0]["value"][1]) == pytest.approx(llm / every)
