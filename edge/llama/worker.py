"""One thread per model: async callers stream what a synchronous iterator produces on it.

llama.cpp models are not thread-safe, so each server keeps its model on one
worker thread. :func:`iterate_in_thread` runs a synchronous iterator there and
hands its items to the event loop as they come. Closing the async iterator
(a client went away) stops the synchronous one after its current item and
closes it on its own thread; requests queue on the worker in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ["iterate_in_thread"]

T = TypeVar("T")
_END = object()


async def iterate_in_thread(
    executor: Executor, make: Callable[[], Iterator[T]]
) -> AsyncIterator[T]:
    """Items of ``make()``, produced on ``executor``; its exceptions re-raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is gone
            loop.call_soon_threadsafe(queue.put_nowait, (item, error))

    def produce() -> None:
        try:
            if stop.is_set():
                return
            iterator = make()
            try:
                for item in iterator:
                    put(item)
                    if stop.is_set():
                        break
            finally:
                getattr(iterator, "close", lambda: None)()
        except BaseException as exc:  # handed to the awaiting coroutine
            put(_END, exc)
        else:
            put(_END)

    job = loop.run_in_executor(executor, produce)
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(Exception):  # already raised above, or the caller's to see
            await asyncio.shield(job)
