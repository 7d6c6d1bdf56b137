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


def test_cloud_never_imports_training_or_torch() -> None:
    code = (
        "import sys, cloud, cloud.app, cloud.cli, cloud.llama_engine, cloud.upstream_engine;"
        "bad = {'training', 'torch', 'transformers'} & set(sys.modules);"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
