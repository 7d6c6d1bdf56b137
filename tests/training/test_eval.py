"""relay eval: every system on the same seeded questions, accounting, resume, report and plot;
what it says while it runs, its flags' errors, and the malformed commands it counts."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import training.eval_command
import training.eval_run
from edge.app.cli import app as relay
from edge.app.ledger import Ledger
from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.core.loop import RelayLoop
from edge.core.policies import RandomRouter
from edge.core.relay import RelayLimits
from edge.llama import LlamaModel
from protocol.events import TextEvent
from protocol.sampling import SamplingParams
from training.entropy_grid import entropy_grid
from training.eval_command import finished_line
from training.eval_report import EvalReport
from training.eval_run import EvalPlan, Results, run_evaluation
from training.evaluate import answer_problems, slm_malformed_commands
from training.problems import Problem
from training.report import matched_p, summarise

PROGRESS_LINE = re.compile(
    r"^\S+: 6 problems, accuracy \d+\.\d %, \d+\.\d cloud tokens per question, "
    r"call ratio \d+\.\d %"
    r"(, \d+ malformed commands)? \((\d) of 6 systems\)$"
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # CliRunner's stderr is not a terminal
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def test_relay_eval_runs_every_system_and_resumes(
    expert_problems: tuple[list[Problem], Path], expert_url: str, slm_path: Path,
    data_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "eval"
    args = ["eval", "--dataset", str(expert_problems[1]), "--limit", "6", "--out", str(out),
            "--slm", str(slm_path), "--cloud-url", expert_url, "--max-tokens", "48",
            "--thresholds", "2.5", "--call-sizes", "16", "--learned-biases", "3",
            "--seed", "4"]  # fmt: skip
    result = CliRunner().invoke(relay, args)
    assert result.exit_code == 0, result.output
    assert "entropy: thresholds 2.5 nats (by hand), call sizes 16" in result.stderr
    assert _progress(result.stderr) == [1, 2, 3, 4, 5, 6]  # one line per system, as each ends
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    systems = {row["system"] for row in rows}
    assert {"slm", "llm", "learned", "learned@bias=+3", "entropy@2.5/16"} <= systems
    assert any(s.startswith("random@p=") for s in systems)
    assert len(rows) == 6 * len(systems)
    # The expert knows every answer: the cloud alone is right, and every cloud token is billed.
    llm = [row for row in rows if row["system"] == "llm"]
    assert all(row["correct"] and row["call_ratio"] > 0.5 for row in llm)
    billed = Ledger(data_dir / "ledger.sqlite3").spend("day").tokens
    assert billed == sum(row["cloud_completion_tokens"] for row in rows)
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(systems)
    assert summary[0].endswith(",fallbacks,malformed_commands")
    assert all("malformed_commands" in row for row in rows)
    assert (out / "accuracy_vs_cloud_tokens.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| llm | 100.0%" in report
    assert "| system | accuracy (95 % CI) | cloud tokens/q | calls/q | call ratio |" in report
    assert "| fallbacks | malformed commands |" in report
    # The bundled SLM was never trained to call: its learned system has no cost to compare at
    # (the comparisons themselves: tests/training/test_envelope.py).
    assert "## Headline\n\n- learned: never called (an SLM not trained to call)" in report
    assert "| entropy@2.5/16 | " in report.split("## Where each system calls")[1]
    assert "- entropy envelope: 0.0 → " in report  # the SLM alone starts the envelope
    assert "- learned envelope: 0.0 → " in report

    again = CliRunner().invoke(relay, args)  # a rerun answers nothing again
    assert again.exit_code == 0, again.output
    assert _progress(again.stderr) == [1, 2, 3, 4, 5, 6]  # and says where each system stands
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
    assert report.no_headline == (
        "No headline: it compares the learned system with the entropy envelope and the random "
        "router at its cloud cost, and learned was not among the systems (see --systems)."
    )
    assert "## Headline\n\nNo headline: it compares" in (tmp_path / "report.md").read_text()
    alone = [r for r in _rows(tmp_path) if r["system"] == "slm"]
    whole = [r for r in _rows(tmp_path) if r["system"] == "llm"]
    assert len(alone) == len(whole) == len(problems)
    from training.evaluate import QuestionResult

    full = sum(r["llm_tokens"] for r in whole) / len(whole)
    target = full / 2  # cloud tokens per question
    p = matched_p([QuestionResult(**r) for r in alone], [QuestionResult(**r) for r in whole],
                  target)  # fmt: skip
    assert p == pytest.approx(0.5)
    loop = RelayLoop(model, cloud, RandomRouter(p), limits=limits, sampling=sampling)
    routed = list(answer_problems("random", loop, problems, seed=2))
    model.close()
    achieved = sum(r.llm_tokens for r in routed) / len(routed)
    assert abs(achieved - target) < 0.3 * full
    assert report.summaries


def _rows(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def _progress(stderr: str) -> list[int]:
    """The ``N`` of every plain progress line (``… (N of 6 systems)``), in order."""
    found = [PROGRESS_LINE.match(line) for line in stderr.splitlines()]
    return [int(match.group(2)) for match in found if match]


def test_the_entropy_grid_is_fitted_for_the_slm_under_test(slm_path: Path) -> None:
    grid = entropy_grid(slm_path, ratios=(0.05, 0.3), sizes=(8, 16), max_calls=4, prompts=4,
                        tokens=48, n_threads=2)  # fmt: skip
    assert [s.n for s in grid] == [8, 8, 16, 16]
    by_size = {n: [s.threshold for s in grid if s.n == n] for n in (8, 16)}
    for few, many in by_size.values():
        assert few > many  # calling more often takes a lower threshold
    assert grid[0].name == f"entropy@{grid[0].threshold:g}/8"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--entropy-ratios", "0.1,1.5", "--entropy-ratios takes call ratios below 1"),
     ("--entropy-ratios", "x", "--entropy-ratios takes positive numbers"),
     ("--call-sizes", "8,0", "--call-sizes takes positive numbers such as 8,16,32, not '8,0'")],
)  # fmt: skip
def test_a_bad_grid_is_a_one_line_usage_error(
    flag: str, value: str, message: str, data_dir: Path
) -> None:
    result = CliRunner().invoke(relay, ["eval", flag, value])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {message}")


@pytest.mark.parametrize("value", ["2,x", "", "2,", "0", "-1,2", "nan", "inf"])
def test_a_bad_threshold_is_a_one_line_usage_error(value: str, data_dir: Path) -> None:
    result = CliRunner().invoke(relay, ["eval", "--thresholds", value])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: --thresholds takes positive numbers such as 2,3,4,5, not {value!r}"
    ]


def test_thresholds_help_names_the_entropy_system() -> None:
    command = typer.main.get_command(relay).commands["eval"]  # type: ignore[attr-defined]
    (option,) = [p for p in command.params if p.name == "thresholds"]
    assert option.help.startswith("Entropy system only")
    assert option.default is None  # fitted for each SLM unless given


def fake_evaluation(
    plan: EvalPlan, *, progress: object = None, finished: object = None
) -> EvalReport:
    """Two systems, one of them with a malformed command, told as ``run_evaluation`` tells."""
    from training.evaluate import QuestionResult

    row = QuestionResult("learned", "q1", "", "", "<call>284.</call> 7", "7", True, True, True,
                         80, 20, 1, 0.2, 30, 20, 0.0, 1.0, 0, "stop", 1)  # fmt: skip
    for n, system in enumerate(("slm", "learned"), start=1):
        if progress is not None:
            progress(system, [row], 1)  # type: ignore[operator]
        if finished is not None:
            finished(summarise(system, [row]), n, 2)  # type: ignore[operator]
    return EvalReport([], {}, {}, [], "No headline: why.")


@pytest.fixture
def fake_eval_args(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, slm_path: Path, tmp_path: Path,
    expert_problems: tuple[list[Problem], Path],
) -> list[str]:  # fmt: skip
    monkeypatch.setattr(training.eval_run, "run_evaluation", fake_evaluation)
    return ["eval", "--dataset", str(expert_problems[1]), "--limit", "2", "--slm", str(slm_path),
            "--out", str(tmp_path / "eval"), "--systems", "slm,learned,entropy",
            "--thresholds", "3,1.5"]  # fmt: skip


def test_to_a_pipe_each_system_is_one_plain_line_as_it_ends(fake_eval_args: list[str]) -> None:
    result = CliRunner().invoke(relay, fake_eval_args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "entropy: thresholds 3, 1.5 nats (by hand), call sizes 8, 16, 32, one system each",
        "slm: 1 problems, accuracy 100.0 %, 20.0 cloud tokens per question, call ratio 20.0 %, "
        "1 malformed commands (1 of 2 systems)",
        "learned: 1 problems, accuracy 100.0 %, 20.0 cloud tokens per question, call ratio "
        "20.0 %, 1 malformed commands (2 of 2 systems)",
    ]
    assert result.stdout.splitlines()[0] == "No headline: why."


def test_on_a_terminal_the_live_bars_stay(
    fake_eval_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(training.eval_command, "err", terminal)
    result = CliRunner().invoke(relay, fake_eval_args)
    assert result.exit_code == 0, result.output
    assert "learned" in screen.getvalue()  # the bar of each system
    assert "of 2 systems" not in screen.getvalue()


def test_finished_line_leaves_out_malformed_commands_when_there_are_none() -> None:
    summary = replace(summarise("learned", []), questions=40, accuracy=0.525, call_ratio=0.194,
                      cloud_tokens_per_question=7.25)  # fmt: skip
    assert finished_line(summary, 1, 5) == (
        "learned: 40 problems, accuracy 52.5 %, 7.2 cloud tokens per question, call ratio 19.4 % "
        "(1 of 5 systems)"
    )


def test_malformed_commands_come_from_the_slm_text_only() -> None:
    events = [
        TextEvent(source="slm", text="The total is <call>28"),
        TextEvent(source="slm", text="4.</call> apples"),  # one command, split across pieces
        TextEvent(source="llm", text="<call>7.</call> cloud text is not counted"),
        TextEvent(source="slm", text="then <call>16"),
        TextEvent(source="llm", text=" and"),
        TextEvent(source="slm", text=" more</call>"),  # two stretches: no command across them
    ]
    assert slm_malformed_commands(events) == 1


def test_results_written_before_the_count_count_their_answer(tmp_path: Path) -> None:
    row = {"system": "learned", "id": "q1", "question": "", "reference": "7",
           "answer": "<call>284.</call> so <call>16</call> 7", "extracted": "7", "correct": True,
           "boxed_correct": False, "last_number_correct": True, "slm_tokens": 9, "llm_tokens": 3,
           "calls": 1, "call_ratio": 0.25, "cloud_prompt_tokens": 20,
           "cloud_completion_tokens": 3, "cost_usd": 0.0, "latency_s": 0.5, "fallbacks": 0,
           "finish_reason": "stop"}  # fmt: skip
    (tmp_path / "results.jsonl").write_text(json.dumps(row) + "\n")
    assert Results(tmp_path / "results.jsonl").rows[("learned", "q1")].malformed_commands == 1
