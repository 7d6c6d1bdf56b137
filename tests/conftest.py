"""Shared fixtures: the bundled models (fetched once into the user cache) and real servers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edge.app.cloud_process import free_port, running

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def slm_path() -> Path:
    from edge.llama.bundled import pull

    return pull("slm", progress=False)


@pytest.fixture(scope="session")
def cloud_model_path() -> Path:
    from edge.llama.bundled import pull

    return pull("cloud", progress=False)


@contextmanager
def relay_cloud(*args: str) -> Iterator[str]:
    """Run ``relay-cloud serve ARGS`` on a free loopback port; yield its base URL."""
    with relay_cloud_process(*args) as (base, _):
        yield base


@contextmanager
def relay_cloud_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like :func:`relay_cloud`, also yielding the server process (to kill it)."""
    port = free_port()
    command = [str(BIN / "relay-cloud"), "serve", "--port", str(port), "--log-level", "warning"]
    env = {"RELAYLLM_DATA_DIR": str(Path(tempfile.gettempdir()) / "relayllm-tests"),
           **os.environ, "RELAYLLM_CLOUD_N_THREADS": "2"}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running([*command, *args], f"{base}/health", env=env) as process:
        yield base, process


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    """relay-cloud's expert engine with four keys and their limits (:mod:`tests.keyed`)."""
    from tests.keyed import Setup

    return Setup.written_under(tmp_path)


@pytest.fixture(scope="session")
def cloud_url(cloud_model_path: Path) -> Iterator[str]:
    """The embedded engine on the bundled cloud model, keys ``key-a`` and ``key-b``."""
    with relay_cloud(
        "--model", str(cloud_model_path), "--model-id", "cloud-test",
        "--api-key", "key-a", "--api-key", "key-b",
        "--n-ctx", "1024", "--max-body-bytes", "65536",
    ) as base:  # fmt: skip
        yield base


@pytest.fixture(scope="session", autouse=True)
def _close_llama_cpp_null_files() -> Iterator[None]:
    """llama_cpp opens /dev/null twice at import and never closes it; close it after the run."""
    yield
    utils = sys.modules.get("llama_cpp._utils")
    if utils is not None:
        utils.outnull_file.close()
        utils.errnull_file.close()
