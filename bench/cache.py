"""Where the benchmarks keep generated photos between runs (git-ignored), made on first use: a fresh clone
has no such folder."""

from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
CACHE.mkdir(exist_ok=True)
