"""The embedded stack: clear start-up errors, and no orphan processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from domain.errors import StartupError
from graph.embedded import EmbeddedGraph, EmbeddedRedis, find_redis_server
from tests.conftest import ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_taken_port_is_named(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StartupError, match=f"port {port} on 127.0.0.1 is already taken"):
            EmbeddedRedis(tmp_path, port=port).start()
        with pytest.raises(StartupError, match=f"Bolt listener: port {port}"):
            EmbeddedGraph(tmp_path, "long-enough-password", bolt_port=port).start()


def test_a_failing_graph_server_reports_why_in_one_line(tmp_path):
    with pytest.raises(StartupError) as caught:
        EmbeddedGraph(tmp_path, "short").start()
    assert "ArcadeDB server (bundled Java runtime) failed to start" in caught.value.message
    assert "password too short" in caught.value.message.lower()


def test_redis_binary_is_found():
    assert os.access(find_redis_server(), os.X_OK)


def test_servers_die_with_a_killed_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from graph.embedded import EmbeddedStack
        s = EmbeddedStack(Path({str(tmp_path)!r}), "long-enough-password", persistent=False).start()
        print(s.graph.proc.pid, s.redis.proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        graph_pid, redis_pid = map(int, line.split())
        assert _alive(graph_pid) and _alive(redis_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_alive(graph_pid) or _alive(redis_pid)):
            time.sleep(0.2)
        assert not _alive(graph_pid), "the graph server outlived its killed parent"
        assert not _alive(redis_pid), "redis-server outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        parent.stdout.close()
