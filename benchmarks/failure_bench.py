"""Failure scenarios at a larger load; writes benchmarks/results/failures.md.

Runs the scenarios of tests/test_failures.py (Redis stopped, the graph server stopped and
killed under load, 50 concurrent calls with one idempotency key) with the load scaled by
``--load`` (workers = 6 x load, phases of 2 x load seconds). The tests assert the
properties (error rate, GRAPH_UNAVAILABLE within 2 s, /readyz, no acknowledged purchase
lost); this writes the figures they measured as a markdown table.

    .venv/bin/python benchmarks/failure_bench.py --load 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "failures.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=3, help="load multiplier (default 3: 18 workers, 6 s phases)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    env = dict(os.environ, QUANZI_FAILURE_LOAD=str(args.load), QUANZI_FAILURE_REPORT=str(args.out.resolve()))
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_failures.py", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, env=env, check=False)
    if done.returncode == 0:
        print(args.out.read_text(encoding="utf-8"))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
