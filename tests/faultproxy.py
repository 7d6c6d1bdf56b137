"""A fault-injecting HTTP proxy on loopback, for tests: edge → proxy → a real cloud server.

:class:`FaultProxy` listens on a loopback port in a background thread and
forwards each request to the upstream server (one request per connection, so a
pooled socket never hides a fault). ``proxy.fault``, switchable at any time,
says what goes wrong with completion requests; everything else passes through:

=============  ==================================================================
none           forward faithfully
refuse         stop listening: connections are refused by the OS
stall-headers  read the request, never answer
stall-mid      forward the first events of the real stream, then go silent
cut-mid        forward the first events, then close the connection mid-body
cut-close      the same on a close-delimited body: the cut looks like the body's end
malformed-sse  put lines that are no SSE event (junk, comments) among the real events
invalid-json   forward the first events together with an event whose data is not JSON
429, 500, 503  answer with that status (429 with ``Retry-After``), no upstream call
drip           forward the real stream one byte per ``drip_interval_s``
inject-call    add an event of cloud text holding ``<call>4</call>`` to the real stream
=============  ==================================================================

``forwarded_text`` and ``forwarded_pieces`` say what cloud text really left the
proxy during the latest completion request: what the edge may show and bill.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = ["EVENTS_BEFORE_FAULT", "INJECTED_CALL", "Fault", "FaultProxy"]

Fault = Literal["none", "refuse", "stall-headers", "stall-mid", "cut-mid", "cut-close",
                "malformed-sse", "invalid-json", "429", "500", "503", "drip",
                "inject-call"]  # fmt: skip
EVENTS_BEFORE_FAULT = 3
"""Stream events forwarded before a mid-stream fault strikes."""
INJECTED_CALL = " <call>4</call>"
_JUNK = b": a comment\nnot an sse field\n\xff\xfe\nretry: soon\n\n"


class FaultProxy:
    """Forwards ``http://127.0.0.1:port`` to ``upstream`` (a base URL), injecting ``fault``."""

    def __init__(
        self, upstream: str, *, retry_after_s: float = 1.0, drip_interval_s: float = 1.0
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.retry_after_s = retry_after_s
        self.drip_interval_s = drip_interval_s
        self.completions = 0
        """Completion requests that reached the proxy."""
        self.forwarded_text = ""
        self.forwarded_pieces = 0
        self.port = 0
        self._first_seen = 0.0
        self._last_closed = 0.0
        self._fault: Fault = "none"
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's base URL, with the upstream's ``/v1`` path."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def busy_s(self) -> float:
        """Seconds from the first completion request since :meth:`reset` until the last of
        their connections closed (by either side): how long the edge kept trying."""
        return max(0.0, self._last_closed - self._first_seen) if self._first_seen else 0.0

    def reset(self) -> None:
        """Zero the counts and the timing."""
        self.completions, self.forwarded_text, self.forwarded_pieces = 0, "", 0
        self._first_seen = self._last_closed = 0.0

    @property
    def fault(self) -> Fault:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self._fault = fault
        self._run(self._listen(fault != "refuse"))

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen(True))
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self, on: bool) -> None:
        if on and self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        elif not on and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _shutdown(self) -> None:
        await self._listen(False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the edge went away: that is what it does when it gives up
        except asyncio.CancelledError:
            pass  # the proxy is shutting down
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(int(_headers(head).get("content-length", "0")))
        if b"/completions " not in head.split(b"\r\n", 1)[0]:
            await self._forward("none", head, body, asyncio.Future(), writer)
            return
        self.completions += 1
        self.forwarded_text, self.forwarded_pieces = "", 0
        self._first_seen = self._first_seen or time.monotonic()
        ended: list[float] = []
        gone = asyncio.ensure_future(reader.read())  # done when the edge hangs up
        gone.add_done_callback(lambda _: ended.append(time.monotonic()))
        try:
            fault = self._fault
            if fault in ("429", "500", "503"):
                await self._answer_error(int(fault), writer)
            elif fault == "stall-headers":
                await gone
            else:
                await self._forward(fault, head, body, gone, writer)
        finally:
            ended.append(time.monotonic())
            gone.cancel()
            self._last_closed = max(self._last_closed, ended[0])

    async def _answer_error(self, status: int, writer: asyncio.StreamWriter) -> None:
        message = "rate limit exceeded" if status == 429 else "the cloud is having trouble"
        body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
        extra = f"Retry-After: {self.retry_after_s:g}\r\n" if status == 429 else ""
        writer.write(
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _forward(
        self,
        fault: Fault,
        head: bytes,
        body: bytes,
        gone: asyncio.Future[bytes],
        writer: asyncio.StreamWriter,
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        try:
            up_writer.write(_with_close(head) + body)
            await up_writer.drain()
            status_head = await up_reader.readuntil(b"\r\n\r\n")
            events = _events(up_reader, _headers(status_head))
            if fault == "cut-close":
                await self._cut_close(status_head, events, writer)
                return
            writer.write(_reframed(status_head, chunked=True))
            if await self._stream(fault, events, gone, writer):
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        finally:
            up_writer.close()

    async def _stream(
        self,
        fault: Fault,
        events: AsyncIterator[bytes],
        gone: asyncio.Future[bytes],
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Send the events with ``fault`` applied; whether the body may end properly."""
        sent, injected, held = 0, fault != "inject-call", b""
        async for event in events:
            if sent == EVENTS_BEFORE_FAULT and fault in ("stall-mid", "cut-mid", "invalid-json"):
                if fault == "stall-mid":
                    await gone  # silent until the edge gives up
                if fault == "invalid-json":  # the held events and the broken one arrive at once
                    await _send(writer, held + b"data: {not json\n\n")
                return fault == "invalid-json"
            sent += 1
            if fault == "invalid-json":
                held += event
            elif fault == "drip":
                for byte in (event[i : i + 1] for i in range(len(event))):
                    await _send(writer, byte)
                    await asyncio.sleep(self.drip_interval_s)
            else:
                await _send(writer, event + (_JUNK if fault == "malformed-sse" else b""))
            if self._note(event) and not injected:
                await _send(writer, _injected(event))
                self.forwarded_text += INJECTED_CALL
                injected = True
        return True

    async def _cut_close(
        self, head: bytes, events: AsyncIterator[bytes], writer: asyncio.StreamWriter
    ) -> None:
        """The first events on a body that ends when the connection closes, then close."""
        writer.write(_reframed(head, chunked=False))
        sent = 0
        async for event in events:
            if sent == EVENTS_BEFORE_FAULT:
                return
            writer.write(event)
            await writer.drain()
            self._note(event)
            sent += 1

    def _note(self, event: bytes) -> str:
        """Count the cloud text an event carries; return it."""
        text = "".join(_texts(event))
        if text:
            self.forwarded_text += text
            self.forwarded_pieces += 1
        return text


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()


async def _events(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The upstream body's server-sent events (``…\\n\\n`` included), de-chunked."""
    buffer = b""
    async for data in _body(reader, headers):
        buffer += data
        while (end := buffer.find(b"\n\n")) != -1:
            yield buffer[: end + 2]
            buffer = buffer[end + 2 :]
    if buffer:
        yield buffer


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    if headers.get("transfer-encoding", "").lower() != "chunked":
        yield await reader.read()  # a short answer (an error); close-delimited or sized
        return
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        yield await reader.readexactly(size)
        await reader.readexactly(2)


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


def _with_close(head: bytes) -> bytes:
    """The request head with ``Connection: close``: one request per upstream socket."""
    lines = [
        line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def _reframed(head: bytes, *, chunked: bool) -> bytes:
    """The upstream's response head for a chunked or close-delimited body, then closing."""
    dropped = (b"transfer-encoding:", b"content-length:", b"connection:")
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(dropped)]
    framing = [b"Transfer-Encoding: chunked"] if chunked else []
    return b"\r\n".join([*lines, *framing, b"Connection: close", b"", b""])


def _texts(event: bytes) -> list[str]:
    """The text of each choice in an event (raw or chat), ``[]`` for anything else."""
    try:
        chunk = json.loads(event.removeprefix(b"data: "))
    except ValueError:
        return []
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    texts = [c.get("text") or (c.get("delta") or {}).get("content") for c in choices or ()]
    return [text for text in texts if isinstance(text, str) and text]


def _injected(event: bytes) -> bytes:
    """A copy of a text event whose text is :data:`INJECTED_CALL`."""
    chunk = json.loads(event.removeprefix(b"data: "))
    choice = {**chunk["choices"][0], "finish_reason": None}
    if "delta" in choice:
        choice["delta"] = {"content": INJECTED_CALL}
    else:
        choice["text"] = INJECTED_CALL
    return b"data: " + json.dumps({**chunk, "choices": [choice]}).encode() + b"\n\n"
