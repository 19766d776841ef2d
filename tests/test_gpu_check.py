"""scripts/gpu_check.sh rehearsed on a CPU-only machine (slow: runs the whole catalogue)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.runner.supervisor import SOURCE_ROOT

SCRIPT = os.path.join(SOURCE_ROOT, "scripts", "gpu_check.sh")


def test_refuses_to_run_without_a_gpu_unless_rehearsing(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run(["bash", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": sys.executable})
    assert out.returncode == 2
    assert "needs a CUDA device" in out.stderr


@pytest.mark.slow
def test_rehearsal_writes_every_output_and_passes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_WITHOUT_GPU": "1"}
    out = subprocess.run(["bash", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for name in ("env.txt", "report.md", "report.html", "report.json", "deterministic.md",
                 "deterministic.html", "deterministic.json", "statuses.txt"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert len(list((tmp_path / "runs").glob("*.parquet"))) == 3  # catalogue + 2 fresh-process repeats
    assert len(list((tmp_path / "deterministic").glob("*.parquet"))) == 2
    assert "everything ran" in out.stdout
