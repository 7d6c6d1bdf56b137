"""The relay on the real SLM, once per API family: what the SLM reads after a call is exactly
what the user was shown, the ledger bills what the provider reported, and only the user's
conversation leaves the device (never the SLM template's own system prompt)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.llama import LlamaModel
from protocol.events import CallFinished, RelayEvent, TextEvent
from tests.edge.clouds.conftest import Served
from tests.edge.conftest import ModelSpy, assert_consistent
from tests.emulators.scripted import SKY

PARTIAL = "The sky is "
PREFIX = "The sky is <call>12</call>"  # the SLM's text; the cloud sees "The sky is "


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:  # a factory of settings
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))

    def make(url: str, key: str, model: str, api: str = "auto") -> EdgeSettings:
        return EdgeSettings(
            cloud_url=url, cloud_key=key, cloud_model=model, cloud_api=api, max_tokens=40,
            temperature=0, policy="learned", retries=0, audit_full_text=True,
        )  # fmt: skip

    return make


def relayed(slm: LlamaModel, settings: EdgeSettings) -> tuple[ModelSpy, Any, list[RelayEvent]]:
    spy = ModelSpy(slm)
    relay = build_relay(settings, model=spy)  # type: ignore[arg-type]
    prompt = relay.prompt([{"role": "user", "content": "Why is the sky blue?"}])
    events = list(relay.answer(prompt, prefix=PREFIX))
    return spy, relay.record, events


def audited(settings: EdgeSettings) -> list[dict[str, Any]]:
    path = settings.resolved_audit_path()
    return [json.loads(line) for line in path.read_text().splitlines()]


def ledger_rows(settings: EdgeSettings) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.resolved_ledger_path()) as db:
        return db.execute(
            "SELECT account, prompt_tokens, completion_tokens, outcome FROM calls ORDER BY id"
        ).fetchall()


EMULATED = [
    ("openai_cloud", "chat"),
    ("anthropic_cloud", "anthropic"),
    ("deepseek_cloud", "chat-prefix"),
    ("mistral_cloud", "chat-prefix"),
]


@pytest.mark.parametrize(("provider", "api"), EMULATED, ids=[p for p, _ in EMULATED])
def test_every_family_splices_what_it_shows(
    slm: LlamaModel, settings_for: Any, provider: str, api: str, request: pytest.FixtureRequest
) -> None:
    served: Served = request.getfixturevalue(provider)
    settings = settings_for(served.url, served.key, served.model)  # auto finds the family
    spy, record, events = relayed(slm, settings)
    assert_consistent(spy, record, events)
    finished = next(e for e in events if isinstance(e, CallFinished))  # the forced call
    assert finished.outcome == "ok"
    assert finished.cloud == record.calls[0].cloud != ""
    before = events[: events.index(finished)]
    cloud_text = "".join(e.text for e in before if isinstance(e, TextEvent) and e.source == "llm")
    assert cloud_text
    assert SKY.startswith(PARTIAL + cloud_text)  # nothing lost, nothing doubled at the seam
    call = record.calls[0]
    (cloud, prompt, completion, outcome), *_ = ledger_rows(settings)
    assert (cloud, outcome) == (finished.cloud, "ok")
    assert (prompt, completion) == (call.prompt_tokens, call.completion_tokens)
    assert completion >= 1
    sent = [r for r in audited(settings) if r["call_id"] != "probe"]
    assert sent
    assert all(r["api"] == api for r in sent)
    assert not any("SmolLM" in json.dumps(r["body"]) for r in audited(settings))


@pytest.mark.parametrize("api", ["completions", "chat-continue"])
def test_relay_cloud_families_splice_what_they_show(
    slm: LlamaModel, settings_for: Any, cloud_url: str, api: str
) -> None:
    settings = settings_for(f"{cloud_url}/v1", "key-a", "cloud-test", api)
    spy, record, events = relayed(slm, settings)
    assert_consistent(spy, record, events)
    outcomes = [e.outcome for e in events if isinstance(e, CallFinished)]
    assert outcomes[0] == "ok"  # (the SLM may ask again after it)
    body, *_ = [r["body"] for r in audited(settings)]
    assert not any("SmolLM" in json.dumps(r["body"]) for r in audited(settings))
    if api == "completions":
        assert body["prompt"].endswith(PARTIAL)


def test_relay_cloud_is_known_without_a_probe(
    slm: LlamaModel, settings_for: Any, cloud_url: str
) -> None:
    settings = settings_for(f"{cloud_url}/v1", "key-a", "cloud-test")
    relay = build_relay(settings, model=slm)
    list(relay.answer(relay.prompt([{"role": "user", "content": "Hi"}]), prefix=PREFIX))
    (cloud,) = relay.clouds
    assert (cloud["api"], cloud["name"]) == ("completions", cloud_url.removeprefix("http://"))
    sent = [r["call_id"] for r in audited(settings)]
    assert sent == [call.call_id for call in relay.record.calls]  # no probe was sent
