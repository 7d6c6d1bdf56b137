"""Shared fixtures: the bundled models (fetched once into the user cache) and real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def slm_path() -> Path:
    from edge.bundled import pull

    return pull("slm", progress=False)


@pytest.fixture(scope="session")
def cloud_model_path() -> Path:
    from edge.bundled import pull

    return pull("cloud", progress=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def relay_cloud(*args: str, timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``relay-cloud serve ARGS`` on a free loopback port; yield its base URL."""
    with relay_cloud_process(*args, timeout_s=timeout_s) as (base, _):
        yield base


@contextmanager
def relay_cloud_process(
    *args: str, timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like :func:`relay_cloud`, also yielding the server process (to kill it)."""
    port = free_port()
    command = [str(BIN / "relay-cloud"), "serve", "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "RELAYLLM_CLOUD_N_THREADS": "2"}
    process = subprocess.Popen([*command, *args], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"relay-cloud exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("relay-cloud did not become healthy")
            time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def cloud_url(cloud_model_path: Path) -> Iterator[str]:
    """The embedded engine on the bundled cloud model, keys ``key-a`` and ``key-b``."""
    with relay_cloud(
        "--model", str(cloud_model_path), "--model-id", "cloud-test",
        "--api-key", "key-a", "--api-key", "key-b",
        "--n-ctx", "1024", "--max-body-bytes", "65536",
    ) as base:  # fmt: skip
        yield base
