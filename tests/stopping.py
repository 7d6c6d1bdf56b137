"""A check both servers share: SIGTERM stops the server within seconds, even mid-answer."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

__all__ = ["assert_sigterm_stops_mid_answer"]


def assert_sigterm_stops_mid_answer(
    process: subprocess.Popen[Any], url: str, body: dict[str, Any], name: str
) -> None:
    """POST ``body`` (a long answer, not streamed) to ``url``, SIGTERM ``process`` a second
    later: it must exit within 15 s (its grace is 2 s; the answer would run far longer), and
    the request must have been answered 503 (try again)."""
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(httpx.post, url, json=body, timeout=60)
        time.sleep(1)  # lets the request arrive; not what is asserted
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still running 15 s after SIGTERM")
        answer = waiting.result(timeout=0)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert "shutting down" in answer.json()["error"]["message"]
