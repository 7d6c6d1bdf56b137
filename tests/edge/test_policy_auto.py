"""A policy that calls out of the box: ``auto`` picks ``learned`` for an SLM trained to call and
``entropy`` otherwise, at a threshold calibrated per model file that gives the target call ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edge.app.calibration as calibration
from edge.app.calibration import (
    BUNDLED_CALIBRATIONS,
    Calibration,
    CalibrationStore,
    calibrate,
    fit_threshold,
    replayed_call_ratio,
)
from edge.app.cli import app
from edge.app.cloud_process import free_port
from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.core.policies import DEFAULT_THRESHOLD, choose_policy
from edge.core.prompt import build_prompt
from edge.llama import LlamaChat, LlamaModel
from edge.llama.bundled import BUNDLED
from protocol.events import DoneEvent
from protocol.model_card import CALL_GRAMMAR, PREFIX, TrainedCard, trained_card


@pytest.mark.parametrize(
    ("requested", "trained", "threshold", "calibrated", "name", "chosen", "why"),
    [
        ("auto", True, None, 3.0, "learned", 3.0, "auto: the SLM was trained to call"),
        ("auto", False, None, 4.7, "entropy", 4.7, "calibrated for this SLM"),
        ("auto", False, None, None, "entropy", DEFAULT_THRESHOLD, "see relay calibrate"),
        ("auto", False, 2.5, 4.7, "entropy", 2.5, "set"),  # a setting beats the calibration
        ("entropy", True, None, 4.7, "entropy", 4.7, "calibrated for this SLM"),
        ("learned", False, None, None, "learned", DEFAULT_THRESHOLD, ""),
        ("never", False, None, None, "never", DEFAULT_THRESHOLD, ""),
    ],
)  # fmt: skip
def test_auto_follows_the_slm_and_its_calibration(
    requested: str, trained: bool, threshold: float | None, calibrated: float | None,
    name: str, chosen: float, why: str,
) -> None:  # fmt: skip
    offline = choose_policy(requested, trained=trained, calibrated=calibrated, offline=True)
    assert offline.name == ("never" if requested == "auto" else requested)  # no call to fail
    choice = choose_policy(requested, trained=trained, threshold=threshold, calibrated=calibrated)
    assert (choice.name, choice.threshold) == (name, chosen)
    assert why in choice.why
    assert choice.why.startswith("auto") == (requested == "auto")


def test_the_card_is_read_only_for_the_grammar_this_release_speaks() -> None:
    card = TrainedCard(chat_template="{{ x }}", base_model="base.gguf", trained_on="2026-11-29")
    meta = {key: str(value) for key, value in card.metadata().items()}
    assert meta[f"{PREFIX}call_grammar"] == CALL_GRAMMAR == "<call>N</call>"
    assert trained_card(meta) == card
    assert trained_card({}) is None
    assert trained_card({**meta, f"{PREFIX}grammar_version": "2"}) is None
    assert trained_card({**meta, f"{PREFIX}grammar_version": "two"}) is None
    assert trained_card({**meta, f"{PREFIX}call_grammar": "[CALL N]"}) is None


def test_replaying_the_policy_counts_cloud_tokens_in_place_of_the_slms() -> None:
    # One call at the 3rd token takes 4 positions; the next needs 4 SLM tokens after it.
    trace = [0.0, 0.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 0.0, 0.0]
    assert replayed_call_ratio([trace], 5.0, n=4, max_calls=4) == pytest.approx(4 / 12)
    assert replayed_call_ratio([trace], 5.0, n=2, max_calls=1) == pytest.approx(2 / 12)
    assert replayed_call_ratio([trace], 9.5, n=4, max_calls=4) == 0.0
    assert replayed_call_ratio([[9.0] * 3], 5.0, n=4, max_calls=4) == 1.0  # cut by the answer end
    assert replayed_call_ratio([], 5.0, n=4, max_calls=4) == 0.0


def test_the_fitted_threshold_gives_the_target_on_the_traces() -> None:
    traces = [[(i * 37 % 100) / 10 for i in range(start, start + 200)] for start in range(8)]
    for target in (0.05, 0.1, 0.3):
        threshold, ratio = fit_threshold(traces, target, n=4, max_calls=1000)
        assert ratio == pytest.approx(target, abs=0.02)
        assert replayed_call_ratio(traces, threshold, n=4, max_calls=1000) == pytest.approx(ratio)
    with pytest.raises(ValueError, match="no entropies"):
        fit_threshold([[]], 0.1, n=4, max_calls=4)


def test_calibrations_are_stored_by_hash_and_only_hashed_when_one_may_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    store = CalibrationStore(tmp_path / "calibration.json")
    assert store.lookup(model) is None
    hashed: list[Path] = []
    real_hash = calibration.file_sha256
    monkeypatch.setattr(calibration, "file_sha256", lambda p: hashed.append(p) or real_hash(p))
    found = Calibration(threshold=3.2, call_ratio=0.1, replayed_call_ratio=0.1, call_tokens=16,
                        prompts=1, tokens=10, model="m.gguf", sha256=real_hash(model),
                        size=model.stat().st_size)  # fmt: skip
    store.save(found)
    assert store.lookup(model) == found
    assert hashed == [model]
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(10))  # another size: not hashed at all
    assert store.lookup(other) is None
    assert hashed == [model]
    same_size = tmp_path / "same.gguf"
    same_size.write_bytes(b"GGUF" + bytes(59) + b"x")  # same size, other content
    assert store.lookup(same_size) is None
    (tmp_path / "calibration.json").write_text("{not json")
    assert store.lookup(model) is None  # a damaged file is no calibration, not a crash


def test_the_bundled_slm_relays_out_of_the_box(
    slm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    assert BUNDLED_CALIBRATIONS[BUNDLED["slm"].sha256].threshold < 6
    args = ["run", "Hi", "--max-tokens", "8", "--seed", "1", "--cloud-url",
            f"http://127.0.0.1:{free_port()}/v1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    shipped = BUNDLED_CALIBRATIONS[BUNDLED["slm"].sha256].threshold
    assert (f"policy entropy {shipped:.2f} nats (auto: the SLM was not trained to call; "
            "calibrated for this SLM)") in " ".join(result.output.split())  # fmt: skip
    relay = build_relay(EdgeSettings(slm=str(slm_path), offline=True, policy="learned"))
    assert relay.policy.name == "learned"  # a chosen policy is kept
    relay.model.close()


@pytest.mark.slow
def test_a_calibrated_threshold_gives_about_the_target_call_ratio(
    slm_path: Path, cloud_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calibrate on a fixed set of questions, then relay them for real: the measured call ratio
    lands near the target."""
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    questions = calibration.PROMPTS[:10]
    target, tokens = 0.15, 64
    model = LlamaModel(slm_path, n_ctx=1024)
    chat = LlamaChat(model)
    prompts = [build_prompt(chat, [{"role": "user", "content": q}], n_ctx=1024).tokens
               for q in questions]  # fmt: skip
    found = calibrate(model, prompts, call_ratio=target, tokens=tokens)
    assert found.replayed_call_ratio == pytest.approx(target, abs=0.03)
    settings = EdgeSettings(
        slm=str(slm_path), cloud_url=f"{cloud_url}/v1", cloud_key="key-a", max_tokens=tokens,
        entropy_threshold=found.threshold, ledger_path=tmp_path / "ledger.sqlite3",
        audit_path=tmp_path / "audit.jsonl",
    )  # fmt: skip
    relay = build_relay(settings, model=model)
    cloud = total = 0
    for index, question in enumerate(questions):
        events = relay.answer(relay.prompt([{"role": "user", "content": question}]), seed=index)
        (done,) = [e for e in events if isinstance(e, DoneEvent)]
        cloud, total = cloud + done.llm_tokens, total + done.llm_tokens + done.slm_tokens
    assert abs(cloud / total - target) < 0.08, (cloud / total, found)
    model.close()


def test_calibrate_stores_the_threshold_for_the_model_file(
    slm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setattr(calibration, "PROMPTS", calibration.PROMPTS[:3])
    args = ["calibrate", "--slm", str(slm_path), "--call-ratio", "0.2", "--max-tokens", "16"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert stored[BUNDLED["slm"].sha256]["threshold"] == printed["threshold"]
    assert (printed["prompts"], printed["call_ratio"]) == (3, 0.2)
    relay = build_relay(EdgeSettings(slm=str(slm_path), policy="entropy", offline=True))
    assert relay.policy.threshold == printed["threshold"]  # the user's own beats the shipped one
    relay.model.close()
    bad = CliRunner().invoke(app, [*args[:3], "--call-ratio", "0"])
    assert bad.exit_code == 2
    assert "between 0 and 1" in bad.output
