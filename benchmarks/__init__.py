"""sweep's benchmarks (``make bench``: ``python -m benchmarks``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The checked-out commit, ``+dirty`` when ``sweep/`` has changes not committed."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "sweep"], cwd=ROOT).returncode != 0
    return proc.stdout.strip() + ("+dirty" if dirty else "") if proc.returncode == 0 else "unknown"
