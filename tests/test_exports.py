"""Package boundaries: each package's public names exist, heavy packages stay out, and the
dependency direction protocol <- edge <- {cloud, training} holds."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "package",
    ["protocol", "edge", "edge.llama", "edge.clouds", "edge.reservations", "cloud", "training"],
)
def test_every_exported_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


@pytest.mark.parametrize(
    ("imports", "forbidden"),
    [
        ("protocol, protocol.calls, protocol.wire, protocol.events, protocol.sse",
         {"llama_cpp", "httpx", "openai", "fastapi", "edge", "cloud", "training"}),
        # the relay core is backend-neutral: no llama.cpp, HTTP, server or tracing package
        ("edge.core, edge.core.relay, edge.core.loop, edge.core.batch, edge.core.policies",
         {"llama_cpp", "httpx", "fastapi", "starlette", "opentelemetry", "torch", "cloud",
          "training", "edge.llama", "edge.clouds", "edge.openai_compat", "edge.app"}),
        ("edge, edge.app.runtime, edge.core.relay, edge.core.loop, edge.core.batch,"
         " edge.app.server",
         {"torch", "transformers", "peft", "trl", "cloud", "training", "openai", "llama_cpp"}),
        # the relay CLI also loads the commands other packages add by entry point (relay eval);
        # what a command needs loads when it runs, so `relay --help` stays quick
        ("edge.app.cli",
         {"torch", "transformers", "peft", "trl", "cloud", "training.grpo", "training.sft",
          "math_verify", "matplotlib", "openai", "llama_cpp", "pydantic", "numpy", "asyncio",
          "httpx"}),
        ("cloud, cloud.app, cloud.cli, cloud.llama_engine, cloud.upstream_engine",
         {"training", "torch", "transformers"}),
    ],
)  # fmt: skip
def test_packages_import_only_what_they_may(imports: str, forbidden: set[str]) -> None:
    code = f"import sys, {imports}; bad = {forbidden!r} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


SERVING = {"prometheus_client", "opentelemetry", "fastapi", "uvicorn", "starlette"}
"""What only the servers (and traces, when asked for) need: never loaded by ``relay run``."""


@pytest.mark.parametrize(
    ("options", "forbidden"),
    [(["--offline"], SERVING | {"httpx", "anyio"}),  # no cloud: no HTTP stack either
     (["--cloud-url", "http://127.0.0.1:9/v1", "--cloud-model", "m"], SERVING)],
    ids=["offline", "cloud"],
)  # fmt: skip
def test_relay_run_loads_no_server_packages(
    slm_path: Path, tmp_path: Path, options: list[str], forbidden: set[str]
) -> None:
    args = ["run", "Hi", "--slm", str(slm_path), "--max-tokens", "2", *options]
    code = (
        "import sys\nfrom edge.app.cli import app\n"
        f"try:\n    app({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        f"bad = {forbidden!r} & set(sys.modules); assert not bad, bad"
    )
    env = {**os.environ, "RELAYLLM_DATA_DIR": str(tmp_path), "RELAYLLM_N_CTX": "512",
           "RELAYLLM_CONFIG": str(tmp_path / "none.toml"), "RELAYLLM_N_THREADS": "2"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def imported_modules(package: str) -> set[str]:
    """Every module named by an import statement anywhere in ``package``."""
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return names


ALLOWED = {
    "protocol": {"protocol"},
    "edge": {"protocol", "edge"},
    "cloud": {
        "protocol",
        "cloud",
        "edge.llama",
        "edge.openai_compat",
        "edge.core.local_model",
        "edge.reservations",
    },
    "training": {"protocol", "edge", "training"},
}


EDGE_PARTS = {
    "edge/core": {"protocol", "edge.core"},
    "edge/llama": {"protocol", "edge.llama", "edge.core"},
    "edge/openai_compat": {"protocol", "edge.openai_compat"},
    "edge/clouds": {
        "protocol",
        "edge.clouds",
        "edge.core",
        "edge.openai_compat",
        "edge.reservations",
    },
    "edge/reservations": {"protocol", "edge.reservations"},
    "edge/app": {"protocol", "edge"},
}
"""Inside ``edge``: the relay core needs nobody; the backend and the cloud client implement
its interfaces; the shared HTTP layer and the reservation store (budgets: the device's and
relay-cloud's) stand alone; only the device app sees every part."""


def _outside(used: set[str], allowed: set[str]) -> list[str]:
    return sorted(n for n in used if not any(n == a or n.startswith(a + ".") for a in allowed))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    ours = ("protocol", "edge", "cloud", "training", "benchmarks", "tests")
    used = {name for name in imported_modules(package) if name.split(".")[0] in ours}
    bad = _outside(used, ALLOWED[package])
    assert not bad, f"{package} imports {bad}"


@pytest.mark.parametrize("part", sorted(EDGE_PARTS))
def test_edge_parts_import_only_what_they_may(part: str) -> None:
    used = {name for name in imported_modules(part) if name.split(".")[0] in ("protocol", "edge")}
    bad = _outside(used, EDGE_PARTS[part])
    assert not bad, f"{part} imports {bad}"


def test_edge_is_its_parts() -> None:
    """Every module of ``edge`` sits in one of its parts (the package's ``__init__`` aside)."""
    loose = sorted(p.name for p in (ROOT / "edge").glob("*.py") if p.name != "__init__.py")
    assert not loose
    assert {p.name for p in (ROOT / "edge").iterdir() if (p / "__init__.py").exists()} == {
        part.split("/")[1] for part in EDGE_PARTS
    }
