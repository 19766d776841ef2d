"""The command line end to end: run, list, env; --help imports no library under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pandas as pd

from audit.runner.supervisor import SOURCE_ROOT


def audit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audit", *args], capture_output=True, text=True,
                          cwd=SOURCE_ROOT, timeout=300, check=check)


def test_help_imports_neither_torch_nor_pandas() -> None:
    code = ("import sys, contextlib, io\n"
            "from audit.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=SOURCE_ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_run_writes_one_parquet_file_pandas_can_read(tmp_path: Path) -> None:
    out = audit("run", "--results", str(tmp_path), "--probe", "random.random", "--probe", "random.gauss",
                "--seed", "17", "--seed", "20210530")
    files: List[Path] = list(tmp_path.glob("*.parquet"))
    assert len(files) == 1
    assert f"wrote {files[0]}" in out.stdout
    frame = pd.read_parquet(files[0])
    assert set(frame.probe) == {"random.random", "random.gauss"}
    assert set(frame.seed) == {17, 20210530}
    assert (frame.status == "ok").all()
    assert frame.run_id.nunique() == 1 and frame.python_version.iloc[0] == ".".join(map(str, sys.version_info[:3]))
    assert not (tmp_path / ".partial").exists() or not any((tmp_path / ".partial").iterdir())
    assert f"{len(frame)} cases ({len(frame)} ok)" in out.stdout


def test_two_runs_never_share_a_file(tmp_path: Path) -> None:
    for _ in range(2):
        audit("run", "--results", str(tmp_path), "--probe", "random.random", "--seed", "1", "-q")
    assert len(list(tmp_path.glob("*.parquet"))) == 2


def test_list_counts_cases() -> None:
    out = audit("list", "--probe", "random.*")
    assert out.stdout.splitlines()[-1].endswith("cases (default seed panel)")
    assert "random.random" in out.stdout


def test_env_json_has_the_documented_fields() -> None:
    env = json.loads(audit("env", "--json").stdout)
    for name in ("python_version", "numpy_version", "torch_version", "pandas_version", "os", "arch", "cpu_model",
                 "cpu_capability", "num_threads", "blas", "gpu_name", "gpu_compute_capability", "cuda_version",
                 "cudnn_version", "driver_version", "deterministic_algorithms", "ATEN_CPU_CAPABILITY",
                 "OMP_NUM_THREADS", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                 "MKL_CBWR", "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED"):
        assert name in env
    assert env["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE")
    assert "-" in env["machine_id"] and os.uname().nodename not in env["machine_id"]


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (["run", "--probe", "no.such.*", "--results", str(tmp_path)],
                 ["run", "--seed", "abc"], ["run", "--seed", str(2**70)], ["list", "--probe", "zzz"]):
        out = audit(*args, check=False)
        assert out.returncode == 2, args
        assert "Traceback" not in out.stderr and out.stderr.strip(), args
