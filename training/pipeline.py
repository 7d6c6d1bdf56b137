"""One training run, start to finish: data, SFT warm-up, GRPO, export, a held-out check.

Everything lands in the run folder::

    config.json  versions.json  metrics.jsonl  training.png
    data/train.jsonl  data/heldout.jsonl  data/unseen.jsonl  data/expert.jsonl
    sft/      warm-up examples, checkpoints, the merged model
    grpo/     checkpoints, the merged model
    export/   model-f16.gguf
    model.gguf  parity.json  heldout.json

A stage that finished leaves ``DONE`` in its folder and is skipped when the run
is started again; SFT and GRPO resume from their last checkpoint. Without a
cloud URL the run starts ``relay-cloud --engine expert`` on a loopback port
for its own use: the labelled stand-in that knows the generated problems.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.core.cloud import CloudClient
from protocol.model_card import TrainedCard
from training.config import RunConfig
from training.metrics import MetricsLog, plot
from training.problems import Problem, generate, load_problems, write_problems

__all__ = ["STAGES", "Run", "run_pipeline"]

STAGES = ("data", "sft", "grpo", "export", "heldout")
PACKAGES = ("relayllm", "torch", "transformers", "peft", "trl", "llama-cpp-python", "math-verify")


@dataclass
class Run:
    """A run folder and its config; ``say`` reports progress to a person."""

    out: Path
    config: RunConfig
    say: Callable[[str], None] = print

    @property
    def metrics(self) -> MetricsLog:
        return MetricsLog(self.out / "metrics.jsonl")

    def done(self, stage: str) -> bool:
        return (self.out / stage / "DONE").is_file()

    def finish(self, stage: str, **facts: Any) -> None:
        folder = self.out / stage
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "DONE").write_text(json.dumps(facts, indent=2) + "\n")

    def problems(self, name: str) -> list[Problem]:
        return load_problems(str(self.out / "data" / f"{name}.jsonl"))


def run_pipeline(run: Run, *, until: str = "heldout", model: Path | None = None) -> None:
    """Run the stages up to ``until``; ``model`` replaces the previous stage's model (GRPO
    starts from it, or export converts it)."""
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "config.json").write_text(run.config.model_dump_json(indent=2) + "\n")
    (run.out / "versions.json").write_text(json.dumps(_versions(), indent=2) + "\n")
    stages = STAGES[: STAGES.index(until) + 1]
    _data(run)
    with _cloud(run) as cloud:
        if "sft" in stages and model is None:
            _sft(run, cloud)
        if "grpo" in stages and not (until == "export" and model is not None):
            _grpo(run, cloud, model or run.out / "sft" / "model")
        if "export" in stages:
            _export(run, model if until == "export" and model else run.out / "grpo" / "model")
        if "heldout" in stages:
            _heldout(run, cloud)
    if plot(run.metrics, run.out / "training.png"):
        run.say(f"plot: {run.out / 'training.png'}")


def _data(run: Run) -> None:
    if run.done("data"):
        return
    settings, folder = run.config.data, run.out / "data"
    if settings.dataset == "builtin":
        pool = generate(settings.train_size + settings.heldout_size, seed=run.config.seed,
                        levels=settings.levels)  # fmt: skip
    else:
        pool = load_problems(settings.dataset, limit=settings.train_size + settings.heldout_size)
    train, heldout = pool[: settings.train_size], pool[settings.train_size :]
    # built-in problems in stories and wording training never sees
    unseen = generate(settings.heldout_size, seed=run.config.seed, levels=settings.levels,
                      split="unseen")  # fmt: skip
    write_problems(train, folder / "train.jsonl")
    write_problems(heldout, folder / "heldout.jsonl")
    write_problems(unseen, folder / "unseen.jsonl")
    write_problems([p for p in pool + unseen if p.solution], folder / "expert.jsonl")
    run.finish("data", train=len(train), heldout=len(heldout), unseen=len(unseen))
    run.say(f"data: {len(train)} training, {len(heldout)} held-out, {len(unseen)} unseen problems")


@contextmanager
def _cloud(run: Run) -> Iterator[CloudClient]:
    settings = run.config.cloud
    if settings.url is not None:
        yield _client(settings.url, settings.key, settings.model, settings.temperature)
        return
    from edge.app.cloud_process import free_port, running

    port = free_port()
    command = [sys.executable, "-m", "cloud", "serve", "--engine", "expert", "--problems",
               str(run.out / "data" / "expert.jsonl"), "--port", str(port),
               "--insecure-no-auth", "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", quiet=True):
        run.say(f"cloud: relay-cloud's expert engine (knows the generated problems) at {base}")
        yield _client(f"{base}/v1", None, None, settings.temperature)


def _client(url: str, key: str | None, model: str | None, temperature: float) -> CloudClient:
    return FallbackCloud(HttpCloud(url, api_key=key, model=model, temperature=temperature))


def _sft(run: Run, cloud: CloudClient) -> None:
    if run.done("sft"):
        return
    from training.models import load_slm
    from training.sft import train_sft
    from training.warmup import WarmupExample
    from training.warmup_stage import build_examples

    slm = load_slm(run.config.slm)
    saved = run.out / "sft" / "examples.jsonl"
    if saved.is_file():  # built by a run that stopped while training: the same examples
        examples = [WarmupExample(**json.loads(line)) for line in saved.read_text().splitlines()]
    else:
        examples = build_examples(run, slm, cloud)
        _save_examples(examples, saved)
    calls = sum(e.calls for e in examples)
    run.say(f"sft: {len(examples)} warm-up examples, {calls} calls with real cloud text")
    folder = train_sft(slm, examples, run.out / "sft", run.config, metrics=run.metrics)
    run.finish("sft", examples=len(examples), calls=calls, model=str(folder))


def _grpo(run: Run, cloud: CloudClient, start: Path) -> None:
    if run.done("grpo"):
        return
    from training.grpo import train_grpo
    from training.hf_text import HFChat
    from training.models import load_slm

    slm = load_slm(start)
    chat = HFChat(slm.tokenizer, template=slm.chat_template)
    folder = train_grpo(slm, run.problems("train"), chat, cloud, run.out / "grpo", run.config,
                        metrics=run.metrics, heldout=run.problems("heldout"))  # fmt: skip
    run.finish("grpo", model=str(folder))


def _export(run: Run, source: Path) -> None:
    if run.done("export"):
        return
    from edge.core.prompt import build_prompt
    from edge.llama import LlamaChat, LlamaModel
    from edge.llama.bundled import BUNDLED
    from training.export import convert, parity, quantize, stamp
    from training.models import load_slm
    from training.problems import messages_for

    settings = run.config.export
    f16 = convert(source, run.out / "export" / "model-f16.gguf")
    slm = load_slm(source)
    card = TrainedCard(
        chat_template=slm.chat_template or "",
        base_model=run.config.slm or BUNDLED["slm"].filename,
        trained_on=datetime.now(timezone.utc).date().isoformat(),
    )
    stamp(f16, card)
    final = run.out / "model.gguf"
    if settings.quantization.upper() == "F16":
        final.write_bytes(f16.read_bytes())
    else:
        quantize(f16, final, settings.quantization)
    edge = LlamaModel(f16, n_ctx=2048, n_threads=run.config.threads)
    chat = LlamaChat(edge)
    prompts = [build_prompt(chat, messages_for(p), n_ctx=2048).tokens
               for p in run.problems("heldout")[: settings.parity_prompts]]  # fmt: skip
    edge.close()
    weights = slm.model.half().float()  # the f16 file's weights, computed in float32
    reports = {}
    for name, gguf in (("f16", f16), (settings.quantization, final)):
        report = parity(weights, slm.tokenizer, gguf, prompts, tokens=settings.parity_tokens,
                        n_threads=run.config.threads)  # fmt: skip
        reports[name] = report.to_json()
        run.say(f"parity {name}: {report.agreeing}/{report.tokens} greedy tokens agree")
    (run.out / "parity.json").write_text(json.dumps(reports, indent=2) + "\n")
    run.finish("export", model=str(final))


def _heldout(run: Run, cloud: CloudClient) -> None:
    if run.done("heldout"):
        return
    from training.heldout import heldout_check

    unseen = run.problems("unseen") if (run.out / "data" / "unseen.jsonl").is_file() else []
    summary = heldout_check(run.out / "model.gguf", run.problems("heldout"), cloud, run.config,
                            unseen=unseen)  # fmt: skip
    (run.out / "heldout.json").write_text(json.dumps(summary, indent=2) + "\n")
    for line in summary["lines"]:
        run.say(line)
    run.finish("heldout", **{k: v for k, v in summary.items() if k not in ("lines", "unseen")})


def _save_examples(examples: list[Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for example in examples:
            out.write(json.dumps(example.__dict__) + "\n")


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
