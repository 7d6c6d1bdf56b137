"""Loopback servers for the benchmarks: any ASGI app in a thread, and an instant fake cloud."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from edge.app.cloud_process import free_port, running
from protocol.wire import (
    SSE_DONE,
    CompletionChoice,
    CompletionChunk,
    ModelCard,
    ModelList,
    Usage,
    encode_sse,
)

__all__ = ["instant_cloud", "serve_in_process", "serve_in_thread"]


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its ``…/v1`` base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join()


def instant_cloud(pieces: int) -> FastAPI:
    """A cloud that streams ``pieces`` one-token chunks at once: no model time at all."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id="instant")])

    @app.post("/v1/completions")
    async def complete() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(pieces):
                finish = "length" if i == pieces - 1 else None
                choice = CompletionChoice(text=" tok", finish_reason=finish)
                yield encode_sse(CompletionChunk(id="c", model="instant", choices=[choice]))
            usage = Usage.of(500, pieces)
            yield encode_sse(CompletionChunk(id="c", model="instant", choices=[], usage=usage))
            yield SSE_DONE

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


@contextmanager
def serve_in_process(pieces: int) -> Iterator[str]:
    """The instant cloud in its own process, so its time is not the client's."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with running(
        [sys.executable, "-m", "benchmarks.servers", str(port), str(pieces)], f"{url}/models"
    ):
        yield url


if __name__ == "__main__":
    uvicorn.run(instant_cloud(int(sys.argv[2])), port=int(sys.argv[1]), log_level="warning")
