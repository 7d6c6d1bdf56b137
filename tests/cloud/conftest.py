"""Fixtures of the cloud tests: a real PostgreSQL server for the shared usage store."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.app.cloud_process import free_port


def postgres_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL's ``initdb``, if there is one."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port, reached by a unix socket in a temp dir."""
    bindir = postgres_bin()
    if bindir is None:
        reason = "PostgreSQL is not installed (no initdb); apt-get install postgresql"
        if os.environ.get("RELAYLLM_CI") == "1":
            pytest.fail(reason + " (.ci/run installs it)")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="relayllm-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), root / "data"

    def run(*command: str | Path) -> None:
        done = subprocess.run([*as_postgres, *map(str, command)], cwd=root, capture_output=True)
        if done.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            pytest.fail(f"{Path(command[0]).name} failed: {done.stderr.decode()}{log}")

    try:
        run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off"
        run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-o", options, "-w", "start")
        try:
            yield f"postgresql://postgres@/postgres?host={root}&port={port}"
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
