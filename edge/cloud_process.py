"""A ``relay-cloud`` endpoint in a child process on a free loopback port (for ``relay demo``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from protocol.errors import CloudUnavailable

__all__ = ["local_cloud"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_cloud(
    model: Path, *, n_threads: int | None = None, timeout_s: float = 120
) -> Iterator[str]:
    """Serve ``model`` without auth on 127.0.0.1; yield the ``…/v1`` base URL; stop it after."""
    port = _free_port()
    command = [sys.executable, "-m", "cloud", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", str(model), "--insecure-no-auth", "--log-level", "warning"]  # fmt: skip
    if n_threads:
        command += ["--n-threads", str(n_threads)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(base):
            if process.poll() is not None:
                raise CloudUnavailable(f"relay-cloud exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise CloudUnavailable(f"relay-cloud did not start within {timeout_s:g} s")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
