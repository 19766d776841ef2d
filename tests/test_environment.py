"""The environment a run records: the settings read by prefix, and how compare tells
environments apart by them (two runs whose settings differ are never "the same")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.compare import Verdict, compare_paths
from audit.compare.baseline import compare_baseline
from audit.runner.supervisor import SOURCE_ROOT
from audit.worker import environment
from tests.compare_helpers import dated_run, record, write

P = {"seed": 0}
SSE41 = '{"DNNL_MAX_CPU_ISA":"SSE41"}'


def test_every_variable_with_a_library_prefix_is_recorded() -> None:
    environ = {"DNNL_MAX_CPU_ISA": "SSE41", "ONEDNN_VERBOSE": "0", "KMP_AFFINITY": "compact", "GOMP_SPINCOUNT": "0",
               "GOTO_NUM_THREADS": "1", "NVIDIA_TF32_OVERRIDE": "0", "TORCH_SHOW_CPP_STACKTRACES": "1",
               "OMP_NUM_THREADS": "2", "HOME": "/root", "PATH": "/bin", "TORCH_HUB_TOKEN": "hunter2"}
    got = environment.read_settings(environ)
    assert got == ('{"DNNL_MAX_CPU_ISA":"SSE41","GOMP_SPINCOUNT":"0","GOTO_NUM_THREADS":"1","KMP_AFFINITY":"compact",'
                   '"NVIDIA_TF32_OVERRIDE":"0","ONEDNN_VERBOSE":"0","TORCH_HUB_TOKEN":"<redacted>",'
                   '"TORCH_SHOW_CPP_STACKTRACES":"1"}')  # OMP_NUM_THREADS has a field of its own
    assert environment.read_settings({"HOME": "/root", "OMP_NUM_THREADS": "2"}) is None
    for prefix in environment.SETTING_PREFIXES:
        assert environment.read_settings({prefix + "X": "1"}) is not None, prefix


def test_a_run_records_its_settings() -> None:
    code = "from audit.worker.environment import capture; print(capture()['settings'])"
    env = {**os.environ, "PYTHONPATH": SOURCE_ROOT, "DNNL_MAX_CPU_ISA": "SSE41"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().startswith('{"DNNL_MAX_CPU_ISA":"SSE41"'), done.stderr


def test_expanded_names_each_setting_as_a_field() -> None:
    got = environment.expanded({"cpu_model": "X", "settings": SSE41})
    assert got == {"cpu_model": "X", "DNNL_MAX_CPU_ISA": "SSE41"}
    assert environment.expanded({"cpu_model": "X", "settings": None}) == {"cpu_model": "X"}
    clash = {"cpu_model": "X", "settings": '{"cpu_model":"Y"}'}  # never overwrites a field
    assert environment.expanded(clash) == clash


def test_runs_whose_settings_differ_are_not_the_same_environment(tmp_path: Path) -> None:
    """A DNNL_MAX_CPU_ISA run next to a plain one: divergent by that variable, never nondeterministic."""
    write([dated_run("a", 1, {}, record("p", P, "x"), record("q", P, "s")),
           dated_run("b", 2, {"settings": SSE41}, record("p", P, "y"), record("q", P, "s"))], str(tmp_path))
    c = compare_paths([str(tmp_path)])
    f = {x.probe_key: x for x in c.findings}
    assert f["p"].verdict == Verdict.DIVERGENT and f["p"].axes == ["DNNL_MAX_CPU_ISA"]
    assert f["q"].verdict == Verdict.IDENTICAL


def test_equal_settings_are_the_same_environment(tmp_path: Path) -> None:
    write([dated_run("a", 1, {"settings": SSE41}, record("p", P, "x")),
           dated_run("b", 2, {"settings": SSE41}, record("p", P, "y"))], str(tmp_path))
    f = {x.probe_key: x for x in compare_paths([str(tmp_path)]).findings}
    assert f["p"].verdict == Verdict.NONDETERMINISTIC


def test_baseline_mode_names_the_setting(tmp_path: Path) -> None:
    write([dated_run("r", 1, {}, record("p", P, "x"))], str(tmp_path / "ref"))
    write([dated_run("n", 2, {"settings": SSE41}, record("p", P, "y"))], str(tmp_path / "new"))
    c = compare_baseline([str(tmp_path / "ref")], [str(tmp_path / "new")])
    assert "DNNL_MAX_CPU_ISA" in c.findings[0].axes


@pytest.mark.slow
def test_two_real_runs_split_by_dnnl_max_cpu_isa(tmp_path: Path) -> None:
    """The issue's reproduction: a plain run and a DNNL_MAX_CPU_ISA=SSE41 run of Conv2d training."""
    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": SOURCE_ROOT, **extra}
        return subprocess.run([sys.executable, "-m", "audit", *args], cwd=SOURCE_ROOT, env=env, text=True,
                              capture_output=True, timeout=300)

    for extra in ({}, {"DNNL_MAX_CPU_ISA": "SSE41"}):
        done = cli("run", "-q", "--results", str(tmp_path), "--probe", "torch.nn.Conv2d:train", "--seed", "0",
                   "--no-repeat", **extra)
        assert done.returncode == 0, done.stderr
    shown = cli("compare", str(tmp_path))
    assert "nondeterministic" not in shown.stdout.lower(), shown.stdout
    if shown.returncode == 0:
        pytest.skip("this machine's oneDNN computes Conv2d alike with and without SSE41")
    assert "split by DNNL_MAX_CPU_ISA: unset | SSE41" in shown.stdout, shown.stdout


def test_settings_entries_are_named_in_the_why_after_kernels_and_cpu() -> None:
    from audit.compare.attribution import differing_fields

    mine = [{"OPENBLAS_CORETYPE": "Haswell", "openblas_core": "Haswell", "cpu_model": "AMD",
             "torch.flush_denormal": "True"}]
    theirs = [{"OPENBLAS_CORETYPE": None, "openblas_core": "SkylakeX", "cpu_model": "Intel"}]
    # baseline mode's "why" names the kernels and the CPU first (issue 18 item 8), then the
    # settings that force them, then the process state a module set at import
    assert list(differing_fields(mine, theirs)) == ["openblas_core", "cpu_model", "OPENBLAS_CORETYPE",
                                                    "torch.flush_denormal"]
