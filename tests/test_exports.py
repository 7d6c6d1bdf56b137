"""Package boundaries: each package's public names exist, and heavy packages stay out."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["protocol", "edge", "cloud", "training"])
def test_every_exported_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


@pytest.mark.parametrize(
    ("imports", "forbidden"),
    [
        ("protocol, protocol.calls, protocol.wire, protocol.events",
         {"llama_cpp", "httpx", "openai", "fastapi", "edge", "cloud"}),
        ("edge.cli, edge.runtime, edge.relay, edge.server",
         {"torch", "transformers", "peft", "trl", "cloud", "training"}),
        ("cloud, cloud.app, cloud.cli, cloud.llama_engine, cloud.upstream_engine",
         {"training", "torch", "transformers"}),
    ],
)  # fmt: skip
def test_packages_import_only_what_they_may(imports: str, forbidden: set[str]) -> None:
    code = f"import sys, {imports}; bad = {forbidden!r} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)
