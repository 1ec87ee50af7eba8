"""Child-process entry point of the embedded graph server (ArcadeDB with its Bolt plugin).

Run by :mod:`graph.embedded` as ``python -m graph.arcadedb_main ROOT HTTP HTTPS BOLT``
with the password in ``QUANZI_EMBEDDED_PASSWORD``. It lives in its own process so the
JVM never competes with the API's event loop, and it exits when its parent dies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

EXIT_WHEEL_MISSING = 3
EXIT_JVM_FAILED = 4


def main(argv: list[str]) -> int:
    root, http_port, https_port, bolt_port = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    password = os.environ.get("QUANZI_EMBEDDED_PASSWORD", "")
    parent = os.getppid()
    try:
        from arcadedb_embedded.server import ArcadeDBServer
    except ImportError as exc:
        print(f"QUANZI-STARTUP-ERROR: the arcadedb-embedded wheel is not installed ({exc})", flush=True)
        return EXIT_WHEEL_MISSING
    try:
        server = ArcadeDBServer(
            root_path=os.path.join(root, "server"),
            root_password=password,
            config={
                "host": "127.0.0.1",
                "http_port": http_port,
                "server_httpsIncomingPort": https_port,
                "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
                "bolt_port": bolt_port,
            },
            jvm_kwargs={"heap_size": os.environ.get("QUANZI_EMBEDDED_HEAP", "4g")},
        )
        server.start()
    except Exception as exc:  # the JVM or the server failed: report it in one line
        print(f"QUANZI-STARTUP-ERROR: the ArcadeDB server (bundled Java runtime) failed to start: {exc}", flush=True)
        return EXIT_JVM_FAILED
    print("QUANZI-READY", flush=True)

    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.is_set():
        if os.getppid() != parent:  # orphaned: our parent died without stopping us
            break
        time.sleep(0.2)
    server.stop()
    # stop() closes the databases, but while a client holds a Bolt connection open the Bolt
    # plugin's threads outlive it and the JVM waits for them: the process lingered until
    # SIGKILL (15 s later), answering every Bolt request "... not expected in state:
    # AUTHENTICATION" meanwhile. Nothing is left to flush, so leave at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
