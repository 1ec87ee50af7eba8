"""A small closed-loop HTTP/1.1 load generator on asyncio streams (uvloop when installed).

Each client holds one keep-alive connection and sends its prebuilt request again as soon as
the previous answer is read in full. No HTTP library sits on the path: a request is one
``write`` of ready bytes, an answer is a header read and a body read (Content-Length or
chunked), so the generator costs a few tens of microseconds of CPU per request. The harness
reports that cost (:attr:`Cell.client_cpu_s`) next to the figures, to show the generator
is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Cell", "Request", "build_request", "post_json", "run_cell"]


@dataclass(frozen=True)
class Request:
    host: str
    port: int
    raw: bytes


def build_request(url: str, body: dict[str, Any], headers: dict[str, str]) -> Request:
    parts = urlsplit(url)
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
            "Content-Type: application/json", "Accept: application/json", f"Content-Length: {len(payload)}",
            "Connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    return Request(str(parts.hostname), int(parts.port or 80), raw)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            return status, b"".join(p[:-2] for p in parts)
        return status, await self.reader.readexactly(length) if length > 0 else b""

    def close(self) -> None:
        self.writer.close()


async def post_json(req: Request) -> tuple[int, Any]:
    """One request on a fresh connection; the decoded JSON answer."""
    conn = await _Conn.open(req.host, req.port)
    try:
        status, body = await conn.send(req.raw)
    finally:
        conn.close()
    return status, json.loads(body)


@dataclass
class Cell:
    """What one closed-loop run measured."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per successful request
    errors: int = 0
    first_error: str = ""
    wall_s: float = 0.0
    client_cpu_s: float = 0.0

    def extend(self, other: Cell) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.wall_s += other.wall_s
        self.client_cpu_s += other.client_cpu_s


async def run_cell(requests: list[Request], clients: int, seconds: float) -> Cell:
    """*clients* closed loops for *seconds*; client *i* sends ``requests[i % len(requests)]``.

    An answer counts as an error when its status is not 200 or its body holds ``"errors"``.
    """
    conns = [await _Conn.open(requests[0].host, requests[0].port) for _ in range(clients)]
    cell = Cell()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stop = t0 + seconds

    async def loop(i: int) -> None:
        conn, raw = conns[i], requests[i % len(requests)].raw
        lat = cell.latencies
        while True:
            started = time.perf_counter()
            if started >= stop:
                return
            status, body = await conn.send(raw)
            if status != 200 or b'"errors"' in body:
                cell.errors += 1
                if not cell.first_error:
                    cell.first_error = f"HTTP {status}: {body[:400].decode(errors='replace')}"
            else:
                lat.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(loop(i) for i in range(clients)))
    finally:
        cell.wall_s = time.perf_counter() - t0
        cell.client_cpu_s = time.process_time() - cpu0
        for c in conns:
            c.close()
    return cell


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
