"""Traces, with a real OTLP/HTTP export to a loopback receiver: the edge's answer and call spans
and relay-cloud's request span share one trace, carry the GenAI attributes, and the tokens they
report are the ones the ledger billed. Off without the OTEL_* variables."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from edge.openai_compat import tracing
from tests.conftest import BIN
from tests.keyed import SECRETS, Setup, serving
from tests.otlp_receiver import otlp_receiver

pytest.importorskip("opentelemetry.sdk", reason="the otel extra: pip install 'relayllm[otel]'")


def test_traces_are_off_without_the_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert not tracing.enabled()
    headers: dict[str, str] = {}
    tracing.inject(headers)
    assert headers == {}  # no traceparent leaves the device
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.enabled()


def test_one_trace_holds_the_answer_the_call_and_the_cloud(
    setup: Setup,
    slm_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with otlp_receiver() as (endpoint, spans):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        with serving(setup) as cloud:
            ledger = tmp_path / "ledger.sqlite3"
            env = {**os.environ, "RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_N_THREADS": "2",
                   "RELAYLLM_CONFIG": str(tmp_path / "none.toml"),
                   "RELAYLLM_LEDGER_PATH": str(ledger), "OTEL_SERVICE_NAME": "device"}  # fmt: skip
            run = subprocess.run(
                [str(BIN / "relay"), "run", "Count the words.", "--slm", str(slm_path),
                 "--cloud-url", f"{cloud}/v1", "--cloud-key", SECRETS["carol"],
                 "--policy", "learned", "--prefix", "Sure: <call>6</call>", "--max-tokens", "24",
                 "--seed", "1"],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
        deadline = time.monotonic() + 10  # relay-cloud has stopped: its last spans are sent
        while time.monotonic() < deadline and not any(s.name == "POST /v1/completions"
                                                       for s in spans):  # fmt: skip
            time.sleep(0.2)
    answer = next(s for s in spans if s.name == "relay answer")
    call = next(s for s in spans if s.kind == 3 and s.service == "device")  # CLIENT
    request = next(s for s in spans if s.kind == 2 and s.parent_id == call.span_id)  # SERVER
    served = next(s for s in spans if s.name.startswith("text_completion"))
    assert answer.service == "device"
    assert request.service == served.service == "relayllm-cloud"
    assert call.trace_id == answer.trace_id == served.trace_id  # one trace, both sides
    assert call.parent_id == answer.span_id
    spans_by_id = {s.span_id: s for s in spans}
    ancestor = spans_by_id[served.parent_id]
    while ancestor.span_id != request.span_id:  # the generation runs within the request
        ancestor = spans_by_id[ancestor.parent_id]
    assert served.attributes["gen_ai.operation.name"] == "text_completion"
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["relayllm.call_id"]
    assert served.attributes["relayllm.key"] == "carol"
    with sqlite3.connect(ledger) as db:
        (billed,) = db.execute("SELECT completion_tokens FROM calls").fetchall()
    assert call.attributes["gen_ai.usage.output_tokens"] == billed[0]
    assert served.attributes["gen_ai.usage.output_tokens"] == billed[0]
    assert answer.attributes["relayllm.calls"] == 1
    assert answer.attributes["relayllm.llm_tokens"] > 0
    assert not any(SECRETS["carol"] in repr(s.attributes) for s in spans)


def test_the_sdks_in_memory_exporter_sees_the_answer_and_its_calls(
    slm_path: Path, cloud_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from edge.app.runtime import build_relay
    from edge.app.settings import EdgeSettings
    from edge.llama import LlamaModel
    from protocol.events import CallFinished

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test in this process to trace
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")  # traces on; the provider is the test's
    model = LlamaModel(slm_path, n_ctx=1024, n_threads=2)
    # Room for both commands whatever the cloud writes: its 4 tokens may be 8 or more SLM tokens.
    settings = EdgeSettings(cloud_url=f"{cloud_url}/v1", cloud_key="key-a", policy="learned",
                            max_tokens=64, ledger_path=tmp_path / "l.sqlite3",
                            audit_path=tmp_path / "a.jsonl")  # fmt: skip
    relay = build_relay(settings, model=model)
    prompt = relay.prompt([{"role": "user", "content": "Hi"}])
    events = list(relay.answer(prompt, prefix="Sure <call>4</call> and <call>3</call>"))
    model.close()
    spans = exporter.get_finished_spans()
    (answer,) = [s for s in spans if s.name == "relay answer"]
    calls = [s for s in spans if s.kind == trace.SpanKind.CLIENT]
    finished = [e for e in events if isinstance(e, CallFinished)]
    assert len(calls) == len(finished) >= 2  # the SLM may write a third command itself
    assert all(c.parent.span_id == answer.context.span_id for c in calls)
    assert all(c.context.trace_id == answer.context.trace_id for c in calls)
    with sqlite3.connect(tmp_path / "l.sqlite3") as db:
        billed = [row[0] for row in db.execute("SELECT completion_tokens FROM calls ORDER BY id")]
    assert [c.attributes["gen_ai.usage.output_tokens"] for c in calls] == billed
    assert answer.attributes["relayllm.calls"] == len(finished)
    assert answer.attributes["gen_ai.usage.output_tokens"] == len(relay.record.tokens)
