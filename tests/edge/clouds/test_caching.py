"""Paying less for the context each call resends: the second call of an answer carries
Anthropic's breakpoint past the first call's cache entry and OpenAI's per-conversation
``prompt_cache_key``; the ledger bills cached tokens at their own price; ``relay stats``
shows them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.clouds.settings import Price
from edge.llama import LlamaModel
from protocol.events import CallFinished
from tests.edge.clouds.conftest import Served

PREFIX = "The sky is <call>3</call> and <call>3</call>"  # two calls in one answer
PRICE = {"prompt": 3.0, "completion": 15.0, "cached_prompt": 0.3, "cache_write": 3.75}


def two_calls(slm: LlamaModel, served: Served, tmp_path: Path, api: str,
              system: str = "") -> tuple[EdgeSettings, list[CallFinished]]:  # fmt: skip
    settings = EdgeSettings(
        cloud_url=served.url, cloud_key=served.key, cloud_model=served.model, cloud_api=api,
        policy="learned",
        prices={served.model: PRICE}, max_tokens=40, max_calls=4, temperature=0, retries=0,
        ledger_path=tmp_path / "ledger.sqlite3", audit_path=tmp_path / "audit.jsonl",
    )  # fmt: skip
    relay = build_relay(settings, model=slm)
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    events = list(relay.answer(relay.prompt(messages), prefix=PREFIX))
    finished = [e for e in events if isinstance(e, CallFinished)]
    assert [f.outcome for f in finished][:2] == ["ok", "ok"]
    return settings, finished


def billed(settings: EdgeSettings) -> list[dict[str, Any]]:
    with sqlite3.connect(settings.resolved_ledger_path()) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM calls ORDER BY id")]


def cost(row: dict[str, Any]) -> float:
    return Price(**PRICE).cost(
        row["prompt_tokens"], row["completion_tokens"],
        cached=row["cached_tokens"], written=row["cache_write_tokens"],
    )  # fmt: skip


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    return tmp_path


def test_anthropic_reads_back_what_the_first_call_cached(
    slm: LlamaModel, anthropic_cloud: Served, isolated: Path
) -> None:
    system = "Answer as a physicist would, in plain words. " * 4  # past the cache minimum
    settings, finished = two_calls(slm, anthropic_cloud, isolated, "anthropic", system=system)
    first, second = anthropic_cloud.emulator.requests[:2]
    one = first["messages"][-1]["content"]
    two = second["messages"][-1]["content"]
    assert one[-1]["cache_control"] == {"type": "ephemeral"}
    assert two[-1]["cache_control"] == {"type": "ephemeral"}
    assert two[0]["text"] == one[-1]["text"]  # the first prefill is a block again
    rows = billed(settings)[:2]
    assert rows[0]["cache_write_tokens"] > 0
    assert rows[1]["cached_tokens"] == rows[0]["cache_write_tokens"]  # read back in full
    for row, call in zip(rows, finished):
        assert row["cost_usd"] == pytest.approx(cost(row))
        assert call.cost_usd == pytest.approx(cost(row))
    full = Price(prompt=3.0, completion=15.0).cost(rows[1]["prompt_tokens"], 0)
    assert cost({**rows[1], "completion_tokens": 0}) < full  # cheaper than uncached


def test_openai_calls_of_one_conversation_share_a_cache_key(
    slm: LlamaModel, openai_cloud: Served, isolated: Path
) -> None:
    long_system = "Answer as a physicist would. " * 260  # over OpenAI's 1024-token minimum
    settings, _ = two_calls(slm, openai_cloud, isolated, "chat", system=long_system)
    sent = [r for r in openai_cloud.emulator.requests if "reasoning_effort" not in r]
    keys = {r["prompt_cache_key"] for r in sent}
    assert len(keys) == 1
    rows = [r for r in billed(settings) if r["outcome"] == "ok"]
    assert rows[0]["cached_tokens"] == 0
    assert rows[1]["cached_tokens"] >= 1024
    assert rows[1]["cost_usd"] == pytest.approx(cost(rows[1]))
    stats = CliRunner().invoke(app, ["stats"], env={"RELAYLLM_LEDGER_PATH": str(
        settings.resolved_ledger_path())})  # fmt: skip
    assert stats.exit_code == 0
    assert "cached" in stats.output
    assert str(sum(r["cached_tokens"] for r in rows)) in stats.output
