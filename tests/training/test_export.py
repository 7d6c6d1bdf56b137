"""Export: a quantized GGUF the edge runtime loads, its parity reported, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge.app.cli import app as relay
from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.core.policies import quiet_commands
from edge.llama import LlamaModel
from protocol.errors import ModelUnavailable
from protocol.model_card import TrainedCard, trained_card
from training.export import convert, parity, quantize, stamp
from training.models import LoadedSLM


def test_a_quantized_export_runs_in_the_edge_and_reports_its_parity(
    f16_pair: tuple[Any, Path],
    hf_slm: LoadedSLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, f16 = f16_pair
    q8 = quantize(f16, tmp_path / "model-q8.gguf", "Q8_0")
    assert q8.stat().st_size < 0.6 * f16.stat().st_size
    edge = LlamaModel(q8, n_ctx=512, n_threads=2)
    prompts = [edge.tokenize("The capital of France is"), edge.tokenize("1, 2, 3, 4,")]
    edge.close()
    report = parity(model, hf_slm.tokenizer, q8, prompts, tokens=16, n_threads=2)
    assert report.tokens == 32
    assert 0 <= report.agreeing <= 32
    assert report.to_json()["agreement"] == report.agreeing / 32
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    result = CliRunner().invoke(relay, ["run", "Hi", "--offline", "--slm", str(q8),
                                        "--max-tokens", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "call ratio" in result.output


def test_export_failures_are_clear(tmp_path: Path, f16_pair: tuple[Any, Path]) -> None:
    with pytest.raises(ModelUnavailable, match=r"convert_hf_to_gguf\.py failed"):
        convert(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="unknown quantization"):
        quantize(f16_pair[1], tmp_path / "y.gguf", "Q3_WEIRD")


def test_the_card_written_into_a_gguf_makes_auto_learned_and_changes_no_weight(
    f16_pair: tuple[Any, Path], tmp_path: Path
) -> None:
    f16 = tmp_path / "stamped.gguf"
    f16.write_bytes(f16_pair[1].read_bytes())
    before = LlamaModel(f16, n_ctx=256, n_threads=2)
    prompt = before.tokenize("The capital of France is")
    before.eval(prompt)
    logits = before.llama._ctx.get_logits_ith(-1)[: before.llama.n_vocab()]
    assert trained_card(before.metadata) is None
    before.close()
    card = TrainedCard(
        chat_template="{{ messages }}", base_model="SmolLM2", trained_on="2026-11-29"
    )
    stamp(f16, card)
    q8 = quantize(f16, tmp_path / "stamped-q8.gguf", "Q8_0")  # quantizing keeps the card
    for path in (f16, q8):
        model = LlamaModel(path, n_ctx=256, n_threads=2)
        assert trained_card(model.metadata) == card
        model.close()
    after = LlamaModel(f16, n_ctx=256, n_threads=2)
    after.eval(prompt)
    assert after.llama._ctx.get_logits_ith(-1)[: after.llama.n_vocab()] == logits
    relay = build_relay(EdgeSettings(slm=str(f16), cloud_url="http://127.0.0.1:9/v1"), model=after)
    assert (relay.policy.name, relay.policy.why) == ("learned", "auto: the SLM was trained to call")
    assert relay.loop.sampling.logit_bias == ()  # its commands are what it is for
    for asked in ({"policy": "entropy", "entropy_threshold": 3.0}, {"offline": True}):
        settings = EdgeSettings(slm=str(f16), cloud_url="http://127.0.0.1:9/v1", **asked)
        quiet = build_relay(settings, model=after).loop.sampling.logit_bias
        assert set(quiet) == set(quiet_commands(after))  # commands that would go nowhere
    after.close()
