"""The persistence benchmark still runs (a smoke run: tiny, its numbers mean nothing)."""

import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_the_write_benchmark_runs_every_path_and_prints_its_ratios():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "services.persistence.bench_write", "--seconds", "0.3", "--sizes",
                           "1,3", "--journal-read", "100"], env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-2000:]
    for path in ("per-order", "copy", "write_batch"):
        assert path in done.stdout, done.stdout
    assert "batch     3: write_batch / COPY" in done.stdout, done.stdout
