"""From a trained model to a GGUF the edge runs: llama.cpp's converter, quantization, parity.

* :func:`converter` fetches the llama-cpp-python source release matching the
  installed package from the package index (once, into the user cache) and
  keeps llama.cpp's own ``convert_hf_to_gguf.py`` with its ``conversion`` and
  vendored ``gguf-py`` packages; it runs in a subprocess with those first on
  the path, so the ``gguf`` package of this environment is left alone.
* :func:`convert` writes an f16 GGUF from a Hugging Face model directory.
* :func:`quantize` makes a smaller file with ``llama_cpp.llama_model_quantize``.
* :func:`stamp` writes the ``relayllm.`` card (trained to call) into a GGUF.
* :func:`parity` compares greedy continuations of the trained model (in
  transformers) with a GGUF run by the edge runtime, token for token.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

from protocol.errors import ModelUnavailable
from protocol.model_card import TrainedCard

__all__ = ["QUANT_TYPES", "Parity", "convert", "converter", "parity", "quantize", "stamp"]

QUANT_TYPES = {"F16": 1, "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q4_K_M": 15, "Q4_0": 2}
"""llama.cpp file types by name (``llama_ftype``)."""

_KEEP = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def converter(cache: Path | None = None) -> Path:
    """The folder holding llama.cpp's converter for the installed llama-cpp-python."""
    version = importlib.metadata.version("llama-cpp-python")
    root = (cache or Path(platformdirs.user_cache_dir("relayllm"))) / f"llama.cpp-{version}"
    script = root / "convert_hf_to_gguf.py"
    if script.is_file():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--quiet", "--dest", tmp, f"llama-cpp-python=={version}"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ModelUnavailable(
                f"could not fetch the llama-cpp-python {version} sources for the GGUF converter: "
                + (done.stderr.strip().splitlines() or ["no archive"])[-1]
            )
        staging = Path(tmp) / "staging"
        prefix = f"{archives[0].name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                inner = member.name.removeprefix(prefix)
                if member.name.startswith(prefix) and inner.startswith(_KEEP) and member.isfile():
                    member.name = inner
                    archive.extract(member, staging, filter="data")
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(staging), root)
    return root


def convert(model_dir: Path, out: Path, *, outtype: str = "f16") -> Path:
    """Write ``model_dir`` (a Hugging Face model) as a GGUF file at ``out``."""
    tools = converter()
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tools / "gguf-py"), str(tools)])}
    command = [sys.executable, str(tools / "convert_hf_to_gguf.py"), str(model_dir),
               "--outfile", str(out), "--outtype", outtype]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ModelUnavailable(f"convert_hf_to_gguf.py failed for {model_dir}:\n{tail}")
    return out


def quantize(source: Path, out: Path, kind: str = "Q8_0") -> Path:
    """Quantize the GGUF ``source`` to ``kind`` (see :data:`QUANT_TYPES`) at ``out``."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    if kind not in QUANT_TYPES:
        raise ValueError(f"unknown quantization {kind!r}; choose one of {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[kind]
    params.nthread = os.cpu_count() or 1
    with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if status != 0 or not out.is_file():
        raise ModelUnavailable(f"llama.cpp could not quantize {source} to {kind} ({status})")
    return out


def stamp(gguf_path: Path, card: TrainedCard) -> Path:
    """Write ``card`` into the metadata of ``gguf_path`` (keys under ``relayllm.``), in place.

    The edge reads them to know the SLM was trained to call (``policy = "auto"``).
    """
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(gguf_path, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    architecture = arch.contents() if arch is not None else "llama"
    staged = gguf_path.with_name(gguf_path.name + ".partial")
    writer = gguf.GGUFWriter(staged, arch=architecture, endianess=reader.endianess)
    details = {
        key: MetadataDetails(gguf.GGUFValueType.UINT32, value)
        if isinstance(value, int)
        else MetadataDetails(gguf.GGUFValueType.STRING, value)
        for key, value in card.metadata().items()
    }
    copy_with_new_metadata(reader, writer, details, remove_metadata=[])
    del reader  # release the memory map before the file is replaced
    staged.replace(gguf_path)
    return gguf_path


@dataclass(frozen=True)
class Parity:
    """How far greedy continuations of a GGUF agree with the trained model's."""

    gguf: str
    prompts: int
    tokens: int
    agreeing: int
    first_mismatch: list[int | None]

    @property
    def agreement(self) -> float:
        return self.agreeing / self.tokens if self.tokens else 1.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "agreement": self.agreement}


def parity(
    model: Any,
    tokenizer: Any,
    gguf: Path,
    prompts: Sequence[Sequence[int]],
    *,
    tokens: int = 32,
    n_threads: int | None = None,
) -> Parity:
    """Greedy continuations of ``prompts`` (token lists) in transformers and in the edge runtime.

    A token agrees when both runs wrote it at the same place with the same
    tokens before it; the first mismatch of each prompt is reported. The edge
    runs with an f16 KV cache here, so only the file's weights are compared.
    """
    from edge.llama import LlamaModel
    from protocol.sampling import SamplingParams
    from training.hf_backend import HFBatch

    batch = HFBatch(model, tokenizer)
    greedy = SamplingParams(temperature=0.0)
    longest = max(len(p) for p in prompts) + tokens + 1
    edge = LlamaModel(gguf, n_ctx=max(512, longest), n_threads=n_threads, kv_cache="f16")
    agreeing, mismatches = 0, []
    try:
        for prompt in prompts:
            expected = _greedy_hf(batch, prompt, greedy, tokens)
            got = _greedy_edge(edge, prompt, greedy, tokens)
            same = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), None)
            agreeing += tokens if same is None else same
            mismatches.append(same)
    finally:
        edge.close()
    return Parity(str(gguf), len(prompts), tokens * len(prompts), agreeing, mismatches)


def _greedy_hf(batch: Any, prompt: Sequence[int], params: Any, n: int) -> list[int]:
    batch.start([prompt], [params])
    out = []
    for _ in range(n):
        out.append(batch.sample(0))
        batch.extend(0, out[-1:])
    return out


def _greedy_edge(edge: Any, prompt: Sequence[int], params: Any, n: int) -> list[int]:
    edge.sync(prompt)
    sampler = edge.sampler(params)
    out = []
    try:
        for _ in range(n):
            out.append(sampler.sample())
            edge.eval(out[-1:])
    finally:
        sampler.close()
    return out


def write_parity(report: Parity, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
