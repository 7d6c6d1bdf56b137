"""Servers in child processes: start one, wait until it answers, stop it after.

``running`` is the one way relayllm (and its tests and benchmarks) starts a
server process; ``local_cloud`` uses it for ``relay demo``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from protocol.errors import CloudUnavailable

__all__ = ["free_port", "local_cloud", "running"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(
    command: list[str],
    ready_url: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    quiet: bool = False,
    stderr: IO[bytes] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; enter once ``ready_url`` answers a GET. Its
    stderr goes to ``stderr`` when given, nowhere when ``quiet``, else to ours."""
    errors = stderr or (subprocess.DEVNULL if quiet else None)
    process = subprocess.Popen(command, env=dict(env) if env else None, stderr=errors)
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(ready_url):
            if process.poll() is not None:
                raise CloudUnavailable(f"{Path(command[0]).name} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise CloudUnavailable(f"{Path(command[0]).name} not ready in {timeout_s:g} s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def local_cloud(model: Path, *, n_threads: int | None = None) -> Iterator[str]:
    """Serve ``model`` without auth on 127.0.0.1; yield the ``…/v1`` base URL."""
    port = free_port()
    command = [sys.executable, "-m", "cloud", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", str(model), "--insecure-no-auth", "--log-level", "warning"]  # fmt: skip
    if n_threads:
        command += ["--n-threads", str(n_threads)]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", quiet=True):
        yield f"{base}/v1"


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True
