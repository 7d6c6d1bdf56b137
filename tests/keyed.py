"""relay-cloud with the expert engine, four keys with their own limits and a state store: shared
by the quota, metrics, logs, tracing and Prometheus tests (the ``setup`` fixture of conftest)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cloud.cli import app
from cloud.keys import hash_key
from cloud.state import KeyUsage
from tests.conftest import relay_cloud

PROMPT = "Count the words."  # the expert engine counts 3 tokens; its bound is 17
LONG = "Recite every word."
SECRETS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "carol": "carol-secret-3",
           "dave": "dave-secret-4"}  # fmt: skip


@dataclass(frozen=True)
class Setup:
    """The expert engine's problems, the keys file and the state store's URL."""

    problems: Path
    keys: Path
    state: str

    @classmethod
    def written_under(cls, tmp_path: Path) -> Setup:
        """The problems, keys file and state store under ``tmp_path`` (the ``setup`` fixture)."""
        words = " ".join(f"w{i}" for i in range(500))
        problems = [{"question": PROMPT, "answer": "1", "solution": words},
                    {"question": LONG, "answer": "1", "solution": "x " * 200_000}]  # fmt: skip
        (tmp_path / "problems.jsonl").write_text("\n".join(json.dumps(p) for p in problems))
        (tmp_path / "keys.toml").write_text(f"""
[defaults]
requests_per_minute = 100
[keys.alice]
hash = "{hash_key(SECRETS["alice"])}"
tokens_per_day = 100
[keys.bob]
hash = "{hash_key(SECRETS["bob"])}"
requests_per_minute = 2
[keys.carol]
hash = "{hash_key(SECRETS["carol"])}"
[keys.dave]
hash = "{hash_key(SECRETS["dave"])}"
usd_per_day = 0.00005
price_completion_usd_per_mtok = 1.0
""")  # fmt: skip
        state = f"sqlite:///{tmp_path / 'state.db'}"
        return cls(tmp_path / "problems.jsonl", tmp_path / "keys.toml", state)


@contextmanager
def serving(setup: Setup, *args: str, upstream: str | None = None) -> Iterator[str]:
    """The expert engine (or one forwarding to ``upstream``) with the keys file unless ``args``."""
    engine = ("--upstream-url", f"{upstream}/v1") if upstream else ("--engine", "expert",
              "--problems", str(setup.problems))  # fmt: skip
    with relay_cloud(
        *engine, "--state-url", setup.state, "--max-output-tokens", "200000",
        *(args or ("--api-keys-file", str(setup.keys))),
    ) as base:  # fmt: skip
        yield base


def ask(base: str, key: str | None, max_tokens: int, *, stream: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {SECRETS.get(key, key)}"} if key else {}
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "stream": stream,
            "stream_options": {"include_usage": True} if stream else None}  # fmt: skip
    return httpx.post(f"{base}/v1/completions", json=body, headers=headers, timeout=30)


def usage_of(setup: Setup) -> dict[str, KeyUsage]:
    result = CliRunner().invoke(app, ["usage", "--state-url", setup.state, "--json"])
    assert result.exit_code == 0, result.output
    return {row["key"]: KeyUsage(**row) for row in json.loads(result.output)}
