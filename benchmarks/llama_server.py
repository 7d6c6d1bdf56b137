"""llama.cpp's own ``llama-server``, built once for the serving benchmark.

:func:`llama_server` fetches the llama-cpp-python source release matching the
installed package (as :func:`training.export.converter` does for the GGUF
converter), builds the ``llama-server`` target of the llama.cpp it vendors with
``cmake -DLLAMA_BUILD_SERVER=ON`` (nice'd) and keeps the binary in the user
cache, so both servers run the same llama.cpp. Without a compiler, ``cmake`` or
the network it returns a note saying why instead of a path.

Run ``python -m benchmarks.llama_server`` to build it ahead of a benchmark.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["llama_server"]


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "relayllm"


def llama_server(version: str | None = None, cache: Path | None = None) -> Path | str:
    """The cached ``llama-server`` binary (built on first use), or why there is none."""
    version = version or importlib.metadata.version("llama-cpp-python")
    root = (cache or _cache()) / f"llama-server-{version}"
    binary = root / "llama-server"
    if binary.is_file():
        return binary
    missing = [tool for tool in ("cmake", "c++", "cc") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)} on this machine: llama-server not built"
    with tempfile.TemporaryDirectory() as tmp:
        source = _fetch_source(version, Path(tmp))
        if isinstance(source, str):
            return source
        build = Path(tmp) / "build"
        steps = (
            ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DBUILD_SHARED_LIBS=OFF"],
            ["cmake", "--build", str(build), "--target", "llama-server", "-j",
             str(os.cpu_count() or 1)],
        )  # fmt: skip
        for step in steps:
            done = subprocess.run(["nice", "-n", "19", *step], capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                return f"llama-server build failed: {tail}"
        built = next((p for p in build.rglob("llama-server") if p.is_file()), None)
        if built is None:
            return "llama-server build produced no binary"
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, binary)
    return binary


def _fetch_source(version: str, tmp: Path) -> Path | str:
    """The llama.cpp folder of the llama-cpp-python ``version`` sources, unpacked in ``tmp``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--quiet", "--dest", str(tmp), f"llama-cpp-python=={version}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    archives = list(tmp.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not archives:
        tail = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        return f"could not fetch the llama-cpp-python {version} sources: {tail}"
    with tarfile.open(archives[0]) as archive:
        archive.extractall(tmp / "src", filter="data")
    return tmp / "src" / archives[0].name.removesuffix(".tar.gz") / "vendor" / "llama.cpp"


if __name__ == "__main__":
    found = llama_server()
    sys.stdout.write(f"{found}\n")
    sys.exit(0 if isinstance(found, Path) else 1)
