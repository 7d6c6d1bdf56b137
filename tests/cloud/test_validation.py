"""Bad requests get a 4xx with an OpenAI-shaped reason, never a 500 or a hang."""

from __future__ import annotations

import httpx
import pytest

AUTH = {"Authorization": "Bearer key-a"}


def post(url: str, **kwargs: object) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def error_of(response: httpx.Response) -> dict[str, str]:
    error = response.json()["error"]
    assert error["message"]
    assert error["type"]
    return error


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"prompt": "x", "max_tokens": 0}', "max_tokens"),
        (b'{"prompt": "x", "temperature": "hot"}', "temperature"),
        (b'{"prompt": ["a", "b"]}', "one prompt"),
        (b'{"prompt": "x", "n": 3}', "n:"),
        (b'{"max_tokens": 3}', "prompt"),
        (b"[1, 2]", "invalid request"),
    ],
)
def test_malformed_completion_is_400_with_reason(cloud_url: str, body: bytes, reason: str) -> None:
    response = post(
        f"{cloud_url}/v1/completions", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert reason in error["message"]


def test_malformed_chat_is_400(cloud_url: str) -> None:
    response = post(
        f"{cloud_url}/v1/chat/completions", json={"messages": [{"role": "robot", "content": 1}]}
    )
    assert response.status_code == 400
    assert "messages" in error_of(response)["message"]


def test_unknown_model_is_404(cloud_url: str) -> None:
    response = post(f"{cloud_url}/v1/completions", json={"prompt": "x", "model": "gpt-9"})
    assert response.status_code == 404
    assert "cloud-test" in error_of(response)["message"]


def test_prompt_longer_than_context_is_400_with_both_numbers(cloud_url: str) -> None:
    response = post(f"{cloud_url}/v1/completions", json={"prompt": "word " * 1500})
    assert response.status_code == 400
    message = error_of(response)["message"]
    assert "1024" in message
    prompt_tokens = int(message.split(" has ")[1].split()[0])
    assert prompt_tokens > 1024


def test_body_over_the_limit_is_413(cloud_url: str) -> None:
    response = post(f"{cloud_url}/v1/completions", json={"prompt": "x" * 70_000})
    assert response.status_code == 413
    assert "65536" in error_of(response)["message"]


def test_chunked_body_over_the_limit_is_413(cloud_url: str) -> None:
    def chunks():  # no Content-Length: the server must count
        yield b'{"prompt": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'"}'

    json_header = {"Content-Type": "application/json"}
    response = post(f"{cloud_url}/v1/completions", content=chunks(), headers=json_header)
    assert response.status_code == 413


def test_unknown_route_is_openai_shaped_404(cloud_url: str) -> None:
    response = httpx.get(f"{cloud_url}/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    error_of(response)


def test_server_still_serves_after_bad_requests(cloud_url: str) -> None:
    response = post(f"{cloud_url}/v1/completions", json={"prompt": "Hi", "max_tokens": 2})
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] <= 2
