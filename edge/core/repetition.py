"""The repetition guard: has an answer started to loop?

A small model sometimes repeats the same stretch of text until its token limit.
:func:`repeating` tells when the answer ends with one stretch of tokens
(``SPAN`` tokens or more in all, periods up to ``LONGEST``) repeated ``times``
times in a row; the relay then ends the answer and says so. The check looks
only at the last tokens, and rejects most periods with one comparison.
"""

from __future__ import annotations

__all__ = ["LONGEST", "SPAN", "repeating"]

SPAN = 32
LONGEST = 64


def repeating(tokens: list[int], times: int) -> int | None:
    """The period of a stretch the answer ends with ``times`` times in a row, if any."""
    end = len(tokens)
    last = tokens[-1]
    for period in range(max(1, -(-SPAN // times)), LONGEST + 1):
        if period * times > end:
            return None
        if tokens[end - 1 - period] != last:
            continue
        tail = tokens[end - period * times :]
        if tail == tail[:period] * times:
            return period
    return None
