"""relay-cloud's OpenAPI schema, fuzzed over loopback: no server error, OpenAI error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import relay_cloud
from tests.schema_fuzz import fuzz

AUTH = {"Authorization": "Bearer key-fuzz"}


@pytest.fixture(scope="module")
def fuzzed_url(cloud_model_path: Path) -> Iterator[str]:
    """An endpoint whose answers stay short: at most 8 tokens, 10 seconds."""
    with relay_cloud(
        "--model", str(cloud_model_path), "--api-key", "key-fuzz", "--n-ctx", "512",
        "--max-output-tokens", "8", "--max-body-bytes", "65536", "--request-timeout", "10",
    ) as base:  # fmt: skip
        yield base


def test_fuzzing_the_schema_finds_no_server_error(fuzzed_url: str) -> None:
    assert fuzz(fuzzed_url, headers=AUTH, max_examples=12) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/completions", b'{"prompt": "\\ud800 hi"}', "prompt"),
        ("/v1/completions", b'{"prompt": "hi", "stop": ["\\udfff"]}', "stop"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages.0.content"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_400_not_500(
    fuzzed_url: str, path: str, body: bytes, field: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = httpx.post(f"{fuzzed_url}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == 400
    assert f"{field}: Value error, not valid Unicode" in response.json()["error"]["message"]
