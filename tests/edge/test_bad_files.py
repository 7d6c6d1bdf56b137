"""Bad local files: one clear line, no traceback, a non-zero exit, and nothing lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from edge.app.ledger import Ledger
from edge.reservations import Claim
from protocol.errors import SetupError
from tests.conftest import BIN


def relay_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "relay"), "run", "hi", "--max-tokens", "4", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert message in errors[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RELAYLLM_DATA_DIR": str(tmp_path / "data"), "RELAYLLM_CONFIG": str(tmp_path / "x")}


def test_bad_model_paths(tmp_path: Path, slm_path: Path, env: dict[str, str]) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(slm_path.read_bytes()[: 1 << 20])
    for path, message in [(tmp_path / "missing.gguf", "no model file"), (tmp_path, "no model file"),
                          (not_gguf, "could not load"), (truncated, "could not load")]:  # fmt: skip
        assert_one_clear_line(relay_run("--offline", "--slm", str(path), env=env), message)


def test_unwritable_data_and_cache_dirs(tmp_path: Path, slm_path: Path) -> None:
    data = relay_run("--slm", str(slm_path), env={"RELAYLLM_DATA_DIR": "/proc/no/data"})
    assert_one_clear_line(data, "/proc/no/data")
    cache = relay_run("--offline", env={"XDG_CACHE_HOME": "/proc/no/cache",
                                        "RELAYLLM_DATA_DIR": str(tmp_path)})  # fmt: skip
    assert_one_clear_line(cache, "could not write the slm model at /proc/no/cache")


def test_a_corrupt_ledger_is_moved_aside_and_the_next_run_starts_afresh(
    tmp_path: Path, slm_path: Path, env: dict[str, str]
) -> None:
    ledger = Path(env["RELAYLLM_DATA_DIR"]) / "ledger.sqlite3"
    ledger.parent.mkdir()
    ledger.write_bytes(b"not a database\n" * 100)
    cloud = ["--slm", str(slm_path), "--cloud-url", "http://127.0.0.1:9/v1"]
    assert_one_clear_line(relay_run(*cloud, env=env), "is damaged")
    (aside,) = ledger.parent.glob("ledger.sqlite3.corrupt-*")
    assert aside.read_bytes() == b"not a database\n" * 100  # kept, never reset
    again = relay_run(*cloud, env=env)
    assert again.returncode == 0, again.stderr
    assert Ledger(ledger).spend("day").calls == 0


def test_damaged_pages_are_found_and_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger(path)
    for _ in range(2000):
        ledger.reserve("", lambda spending: Claim(5, 0.0), endpoint="e", model="m")
    ledger.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[8192 : 8192 + 2048] = b"\xff" * 2048  # a b-tree page overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(SetupError, match=r"is damaged .*moved to") as raised:
        Ledger(path)
    assert "\n" not in str(raised.value)
    (aside,) = tmp_path.glob("l.db.corrupt-*Z")  # with its -wal and -shm beside it
    assert aside.read_bytes() == bytes(data)
    assert not path.exists()
    assert Ledger(path).spend("day").calls == 0


def test_an_unopenable_ledger_is_not_mistaken_for_a_damaged_one(tmp_path: Path) -> None:
    taken = tmp_path / "ledger.sqlite3"
    taken.mkdir()  # a directory where the file should be: cannot open, not damaged
    with pytest.raises(SetupError, match="cannot use the ledger"):
        Ledger(taken)
    assert taken.is_dir()
    assert list(tmp_path.iterdir()) == [taken]
