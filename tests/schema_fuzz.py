"""Fuzzing a live server through its own OpenAPI schema with schemathesis.

Every operation gets valid and invalid requests (wrong types, missing fields, odd
values); whatever comes, the server must answer without a 5xx, and every error
must be an OpenAI error body with the status its kind calls for, one the schema documents.
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

__all__ = ["fuzz"]

ERROR_STATUSES = {400, 401, 404, 405, 413, 429}


def fuzz(base: str, *, headers: dict[str, str], max_examples: int) -> list[str]:
    """Run ``max_examples`` valid and invalid requests per operation; what went wrong."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", timeout=30)
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problems += _fuzz_operation(operation, mode, base, headers, max_examples)
    return problems


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base: str, headers: dict[str, str], max_examples: int
) -> list[str]:
    documented = set(operation.definition.raw.get("responses", {}))
    problems: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), derandomize=True)  # fmt: skip
    def send(case: Case) -> None:
        problem = _problem(case, base, headers, documented)
        if problem:
            problems.append(problem)

    with suppress(Unsatisfiable):  # nothing invalid to send (an operation without inputs)
        send()
    return problems


def _problem(case: Case, base: str, headers: dict[str, str], documented: set[str]) -> str | None:
    """What is wrong with the server's answer to ``case``, if anything."""
    response = case.call(base_url=base, headers=headers, timeout=60)
    status, where = response.status_code, f"{case.method} {case.path} {case.body!r:.300}"
    if str(status) not in documented:
        return f"{status}, not in the schema ({sorted(documented)}), for {where}"
    if status < 400:
        return None
    if status not in ERROR_STATUSES:
        return f"{status} for {where}: {response.content[:300]!r}"
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return f"{status} without an OpenAI error body for {where}: {response.content[:300]!r}"
    if not (isinstance(error.get("message"), str) and error["message"] and error.get("type")):
        return f"{status} with an incomplete error body for {where}: {error}"
    if status == 429 and "retry-after" not in response.headers:
        return f"429 without Retry-After for {where}"
    return None
