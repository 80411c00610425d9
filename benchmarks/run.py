"""`make bench`: run every benchmarks/bench_*.py in turn; each prints its own side-by-side ratios."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    selected = [p for p in sorted(here.glob("bench_*.py")) if not argv or any(a in p.stem for a in argv)]
    if not selected:
        print("no benchmarks matched", file=sys.stderr)
        return 1
    failures = 0
    for script in selected:
        print(f"== {script.stem}", flush=True)
        failures += subprocess.run([sys.executable, str(script)], cwd=here.parent).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
