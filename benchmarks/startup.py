"""How long a person waits: ``relay --help``, and the first token of ``relay run``.

``cli_start_ms``: ``relay --help`` as a whole process. ``first_token_ms``: from
starting ``relay run "Hi" --offline`` to its first byte of answer, model load
included; ``first_token_vs_bare_ratio``: that / the same for a bare
llama-cpp-python script that loads the same GGUF with the same settings,
evaluates the same prompt and prints one token. relayllm's modules are compiled to
bytecode first, as an installed package has them (``PYTHONDONTWRITEBYTECODE`` or an
edited checkout would otherwise time the compiler).
"""

from __future__ import annotations

import compileall
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["startup"]

BARE = """
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=8192, n_threads=2, verbose=False,
              type_k=8, type_v=8, flash_attn=True)
model.eval(model.tokenize(sys.argv[2].encode(), add_bos=True, special=True))
sys.stdout.write(model.detokenize([model.sample(temp=0.0)]).decode(errors="ignore") or ".")
sys.stdout.flush()
"""


def _first_byte(command: list[str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    process.stdout.read(1)
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait()
    return elapsed


def startup(slm: Path, prompt: str, repeats: int) -> dict[str, float]:
    """The three figures, medians of ``repeats`` runs each."""
    for package in ("protocol", "edge", "training"):  # compiled, as an installed package is
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            compileall.compile_dir(Path(spec.origin).parent, quiet=1)
    relay = str(Path(sys.executable).parent / "relay")
    helps = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([relay, "--help"], capture_output=True, check=True)
        helps.append(time.perf_counter() - started)
    run = [relay, "run", "Hi", "--offline", "--slm", str(slm), "--max-tokens", "4"]
    ours = statistics.median(_first_byte(run) for _ in range(repeats))
    bare = statistics.median(
        _first_byte([sys.executable, "-c", BARE, str(slm), prompt]) for _ in range(repeats)
    )
    return {"cli_start_ms": statistics.median(helps) * 1000, "first_token_ms": ours * 1000,
            "first_token_vs_bare_ratio": ours / bare}  # fmt: skip
