"""GPU offload settings: they reach llama.cpp, ``auto`` follows the installed build, and GPU
layers asked of a CPU-only build are a one-line note, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from edge.llama import LlamaModel
from edge.llama.gpu import plan_gpu_layers


def test_auto_on_this_cpu_build_puts_no_layer_on_a_gpu(slm_path: Path) -> None:
    model = LlamaModel(slm_path, n_ctx=512, n_threads=2)
    assert model.llama.model_params.n_gpu_layers == 0  # what llama.cpp was asked for
    assert model.placement() == {"backend": "CPU", "gpu_layers": 0, "layers": model.layers,
                                 "threads": 2}  # fmt: skip
    assert model.layers == 31  # SmolLM2-135M: 30 blocks and the output layer
    assert model.gpu.note == ""
    model.close()


def test_layers_asked_of_a_cpu_build_are_a_note(slm_path: Path) -> None:
    model = LlamaModel(slm_path, n_ctx=512, n_threads=2, n_gpu_layers=8)
    assert model.llama.model_params.n_gpu_layers == 0
    assert "no GPU backend" in model.gpu.note
    model.close()
    assert plan_gpu_layers(0).note == ""  # CPU only was asked for: nothing to say


@pytest.mark.parametrize(
    ("info", "backend"),
    [(b"CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : AVX2 = 1 |", "CUDA"),
     (b"Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 |", "Metal"),
     (b"Vulkan : COOPMAT = 1 | CPU : AVX2 = 1 |", "Vulkan")],
)  # fmt: skip
def test_on_a_gpu_build_auto_offloads_every_layer(
    monkeypatch: pytest.MonkeyPatch, info: bytes, backend: str
) -> None:
    import llama_cpp

    # no GPU build can run here: the two functions llama.cpp answers with are what changes
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: True)
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: info)
    auto = plan_gpu_layers("auto")
    assert (auto.backend, auto.n_gpu_layers, auto.offloaded(31)) == (backend, -1, 31)
    some = plan_gpu_layers(12)
    assert (some.n_gpu_layers, some.offloaded(31), some.note) == (12, 12, "")


def test_the_cli_says_it_in_one_line(tmp_path: Path, slm_path: Path) -> None:
    env = {"RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_CONFIG": str(tmp_path / "none.toml"),
           "RELAYLLM_N_THREADS": "2"}  # fmt: skip
    base = ["run", "Hi", "--offline", "--slm", str(slm_path), "--max-tokens", "4"]
    noted = CliRunner().invoke(app, [*base, "--gpu-layers", "8"], env=env)
    assert noted.exit_code == 0
    assert "8 GPU layers were asked for" in noted.output
    bad = CliRunner().invoke(app, [*base, "--gpu-layers", "many"], env=env)
    assert bad.exit_code == 2
    assert "--gpu-layers:" in bad.output
    assert "Traceback" not in bad.output
    listed = CliRunner().invoke(app, ["models", "list"], env=env)
    assert "llama.cpp backend: CPU" in listed.output
    assert "CPU threads: " in listed.output
