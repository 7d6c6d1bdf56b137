"""``relay serve``'s OpenAPI schema, fuzzed over loopback: no server error, OpenAI error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.test_serve_limits import serving
from tests.schema_fuzz import fuzz

AUTH = {"Authorization": "Bearer sk-fuzz"}


@pytest.fixture(scope="module")
def fuzzed_url(slm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Offline, with a key, answers of at most 8 tokens and 10 seconds."""
    tmp = tmp_path_factory.mktemp("fuzzed")
    args = ("--api-key", "sk-fuzz", "--request-timeout", "10")
    with serving(slm_path, tmp, *args, max_output_tokens=8) as (base, _):
        yield base


def test_fuzzing_the_schema_finds_no_server_error(fuzzed_url: str) -> None:
    assert fuzz(fuzzed_url, headers=AUTH, max_examples=12) == []


def test_a_lone_surrogate_is_400_not_500(fuzzed_url: str) -> None:
    body = b'{"messages": [{"role": "user", "content": "\\ud800"}]}'
    headers = {**AUTH, "Content-Type": "application/json"}
    response = httpx.post(f"{fuzzed_url}/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400
    assert "not valid Unicode" in response.json()["error"]["message"]
