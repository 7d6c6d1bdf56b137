"""The admission rule both servers share: ``capacity`` in flight, then 429 with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edge.openai_compat.serving import RETRY_AFTER_S, Admission
from protocol.errors import Overloaded


async def two() -> AsyncIterator[int]:
    yield 1
    yield 2


def test_a_place_is_held_until_the_answer_ends_or_is_closed() -> None:
    async def scenario() -> None:
        admission = Admission(2)
        first, second = admission.admit(two()), admission.admit(two())
        with pytest.raises(Overloaded) as refused:
            admission.admit(two())
        assert refused.value.retry_after_s == RETRY_AFTER_S
        assert [item async for item in first] == [1, 2]
        assert admission.in_flight == 1
        await anext(second)
        await second.aclose()  # type: ignore[attr-defined]  # a client that went away
        assert admission.in_flight == 0

    asyncio.run(scenario())
