"""What the benchmark scripts share: a real `quanzi serve` process on the benchmark's servers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


UNLIMITED_RATE = {f"QUANZI_RATE_LIMIT_{who}_{what}": "1000000000"
                  for who in ("PRINCIPAL", "IP") for what in ("BURST", "PER_SECOND")}


@contextlib.contextmanager
def server(ep: Any, **settings: str) -> Iterator[str]:
    """Run `quanzi serve` (no demo data) against endpoints *ep*; yield its base URL once healthy.

    *settings* are extra ``QUANZI_*`` variables, e.g. ``QUANZI_SCHEDULER_INTERVAL="0"``.
    """
    with server_process(ep, **settings) as (base, _):
        yield base


@contextlib.contextmanager
def server_process(ep: Any, **settings: str) -> Iterator[tuple[str, int]]:
    """Like :func:`server`, yielding the base URL and the server's process id."""
    from graph.embedded import free_port

    port = free_port()
    # The rate limiter stays on (its Redis call is part of every request's cost) with budgets no
    # benchmark exhausts: a load generator on one IP is not what the limits are for.
    settings = {**UNLIMITED_RATE, **settings}
    env = dict(os.environ, QUANZI_NEO4J_URI=ep.graph_uri, QUANZI_NEO4J_USER=ep.graph_user,
               QUANZI_NEO4J_PASSWORD=ep.graph_password, QUANZI_NEO4J_DATABASE=ep.graph_database or "",
               QUANZI_REDIS_URL=ep.redis_url, QUANZI_PORT=str(port), QUANZI_DEMO_MEMBERS="0", **settings)
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
