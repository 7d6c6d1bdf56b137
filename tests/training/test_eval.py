"""relay eval: every system on the same seeded questions, accounting, resume, report and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app as relay
from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.ledger import Ledger
from edge.llama import LlamaModel
from edge.loop import RelayLoop
from edge.policies import RandomRouter
from edge.relay import RelayLimits
from protocol.sampling import SamplingParams
from training.eval_run import EvalPlan, run_evaluation
from training.evaluate import answer_problems
from training.problems import Problem
from training.report import matched_p


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    return tmp_path / "data"


def test_relay_eval_runs_every_system_and_resumes(
    expert_problems: tuple[list[Problem], Path], expert_url: str, slm_path: Path,
    data_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "eval"
    args = ["eval", "--dataset", str(expert_problems[1]), "--limit", "6", "--out", str(out),
            "--slm", str(slm_path), "--cloud-url", expert_url, "--max-tokens", "48",
            "--thresholds", "2.5", "--seed", "4"]  # fmt: skip
    result = CliRunner().invoke(relay, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    systems = {row["system"] for row in rows}
    assert {"slm", "llm", "learned", "entropy@2.5"} <= systems
    assert any(s.startswith("random@p=") for s in systems)
    assert len(rows) == 6 * len(systems)
    # The expert knows every answer: the cloud alone is right, and every cloud token is billed.
    llm = [row for row in rows if row["system"] == "llm"]
    assert all(row["correct"] and row["call_ratio"] > 0.5 for row in llm)
    billed = Ledger(data_dir / "ledger.sqlite3").spend("day").tokens
    assert billed == sum(row["cloud_completion_tokens"] for row in rows)
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(systems)
    assert (out / "accuracy_vs_call_ratio.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| llm | 100.0%" in report
    assert "## Headline" in report

    again = CliRunner().invoke(relay, args)  # a rerun answers nothing again
    assert again.exit_code == 0, again.output
    assert len((out / "results.jsonl").read_text().splitlines()) == len(rows)


def test_the_matched_router_lands_near_its_target_ratio(
    expert_problems: tuple[list[Problem], Path], expert_url: str, slm_path: Path, tmp_path: Path
) -> None:
    problems = expert_problems[0]
    model = LlamaModel(slm_path, n_ctx=2048, n_threads=2)
    limits, sampling = RelayLimits(max_tokens=48), SamplingParams(temperature=0.7)
    cloud = FallbackCloud(HttpCloud(expert_url, temperature=0.0, retries=0))
    plan = EvalPlan(problems, [slm_path], lambda: cloud, tmp_path, systems=("slm", "llm"),
                    seed=2, max_tokens=48)  # fmt: skip
    report = run_evaluation(plan)
    alone = [r for r in _rows(tmp_path) if r["system"] == "slm"]
    whole = [r for r in _rows(tmp_path) if r["system"] == "llm"]
    assert len(alone) == len(whole) == len(problems)
    from training.evaluate import QuestionResult

    p = matched_p([QuestionResult(**r) for r in alone], [QuestionResult(**r) for r in whole], 0.5)
    loop = RelayLoop(model, cloud, RandomRouter(p), limits=limits, sampling=sampling)
    routed = list(answer_problems("random", loop, problems, seed=2))
    model.close()
    cloud_tokens = sum(r.llm_tokens for r in routed)
    achieved = cloud_tokens / sum(r.slm_tokens + r.llm_tokens for r in routed)
    assert abs(achieved - 0.5) < 0.2
    assert report["summaries"]


def _rows(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
