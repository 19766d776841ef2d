"""Sweep: parsing axes, combining them into run specs, checking what was honoured, and
the command end to end on a small probe subset (two ATen dispatch levels split torch.randn)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

from audit import registry
from audit.errors import UsageError
from audit.runner import sweep
from audit.runner.spec import RunSpec

# --------------------------------------------------------------------------- parsing
from audit.runner.supervisor import SOURCE_ROOT

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, name, values",
    [
        ("ATEN_CPU_CAPABILITY=default,avx2,avx512", "ATEN_CPU_CAPABILITY", ("default", "avx2", "avx512")),
        ("ATEN_CPU_CAPABILITY=AVX2", "ATEN_CPU_CAPABILITY", ("avx2",)),
        ("threads=1,2", "threads", ("1", "2")),
        ("deterministic=on,off", "deterministic", ("on", "off")),
        ("NPY_DISABLE_CPU_FEATURES=unset,X86_V4,AVX512F AVX512_SKX", "NPY_DISABLE_CPU_FEATURES",
         ("unset", "X86_V4", "AVX512F AVX512_SKX")),
        ("PYTHONHASHSEED=0,1,random", "PYTHONHASHSEED", ("0", "1", "random")),
        ("OPENBLAS_CORETYPE=Haswell", "OPENBLAS_CORETYPE", ("Haswell",)),
        (" OMP_NUM_THREADS = 1 , 4 ", "OMP_NUM_THREADS", ("1", "4")),
    ],
)
def test_parse_axis_accepts(text: str, name: str, values: tuple) -> None:
    assert sweep.parse_axis(text) == sweep.Axis(name, values)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("FOO", "expected NAME=V1,V2"),
        ("=1,2", "expected NAME=V1,V2"),
        ("X=", "unknown axis 'X'"),
        ("FOO=1", "unknown axis 'FOO'"),
        ("threads=", "empty value"),
        ("threads=1,,2", "empty value"),
        ("threads=0", "not a valid value"),
        ("threads=two", "not a valid value"),
        ("threads=unset", "not a valid value"),
        ("deterministic=maybe", "not a valid value"),
        ("ATEN_CPU_CAPABILITY=avx9", "not a valid value"),
        ("PYTHONHASHSEED=-1", "not a valid value"),
        ("threads=1,1", "repeated"),
    ],
)
def test_parse_axis_rejects_with_one_clear_line(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        sweep.parse_axis(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_axes_rejects_a_repeated_axis_and_none() -> None:
    with pytest.raises(UsageError, match="given twice"):
        sweep.parse_axes(["threads=1", "threads=2"])
    with pytest.raises(UsageError, match="at least one --axis"):
        sweep.parse_axes([])


def test_every_recorded_setting_can_be_swept_except_the_machine_facts() -> None:
    from audit.worker.environment import SETTINGS

    # OPENBLAS_L2_SIZE describes the machine: it is recorded, never varied.
    assert set(SETTINGS) - set(sweep.AXES) == {"OPENBLAS_L2_SIZE"}


# --------------------------------------------------------------------------- combining


def test_combinations_are_the_cartesian_product_first_axis_slowest() -> None:
    axes = sweep.parse_axes(["ATEN_CPU_CAPABILITY=default,avx2,avx512", "threads=1,2"])
    combos = sweep.combinations(axes)
    assert len(combos) == 6
    assert combos[0] == {"ATEN_CPU_CAPABILITY": "default", "threads": "1"}
    assert combos[1] == {"ATEN_CPU_CAPABILITY": "default", "threads": "2"}
    assert combos[-1] == {"ATEN_CPU_CAPABILITY": "avx512", "threads": "2"}
    assert sweep.label(combos[1]) == "ATEN_CPU_CAPABILITY=default threads=2"


def test_spec_for_applies_variables_flags_and_unset() -> None:
    base = RunSpec(probes=["torch.randn"], env={"KEEP": "1"})
    spec = sweep.spec_for(base, {"ATEN_CPU_CAPABILITY": "avx2", "threads": "2", "deterministic": "on",
                                 "NPY_DISABLE_CPU_FEATURES": "unset"})
    assert spec.env == {"KEEP": "1", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "2",
                        "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    assert spec.unset == ["NPY_DISABLE_CPU_FEATURES"]
    assert (spec.calls, spec.probes) == ({"threads": "2", "deterministic": "on"}, ["torch.randn"])
    assert base.env == {"KEEP": "1"} and base.calls == {}  # the base is not changed


def test_an_explicit_pool_axis_wins_over_threads() -> None:
    spec = sweep.spec_for(RunSpec(), {"threads": "2", "OMP_NUM_THREADS": "1"})
    assert spec.env["OMP_NUM_THREADS"] == "1" and spec.env["MKL_NUM_THREADS"] == "2"


def test_combinations_have_distinct_spec_digests() -> None:
    """A resumed run must never be mistaken for another combination's."""
    axes = sweep.parse_axes(["ATEN_CPU_CAPABILITY=default,avx2", "deterministic=on,off"])
    digests = {sweep.spec_for(RunSpec(), s).digest() for s in sweep.combinations(axes)}
    assert len(digests) == 4


# --------------------------------------------------------------------------- honoured?

_ENV: Dict[str, Any] = {"torch_version": "2.13.0", "numpy_version": "2.4.6", "cpu_capability": "AVX512",
                        "num_threads": "2", "deterministic_algorithms": "False",
                        "numpy_simd": "X86_V2 X86_V3 X86_V4 AVX512_ICL", "OMP_NUM_THREADS": "2"}


def test_unhonoured_reports_torch_falling_back() -> None:
    assert sweep.unhonoured({"ATEN_CPU_CAPABILITY": "avx512"}, _ENV) == []
    notes = sweep.unhonoured({"ATEN_CPU_CAPABILITY": "zvector"}, _ENV)
    assert len(notes) == 1 and "dispatched AVX512 instead" in notes[0]


def test_unhonoured_checks_threads_deterministic_and_variables() -> None:
    assert sweep.unhonoured({"threads": "2", "deterministic": "off", "OMP_NUM_THREADS": "2"}, _ENV) == []
    notes = sweep.unhonoured({"threads": "1", "deterministic": "on", "OMP_NUM_THREADS": "4"}, _ENV)
    assert [n.split(":")[0] for n in notes] == ["threads=1", "deterministic=on", "OMP_NUM_THREADS=4"]


def test_unhonoured_numpy_features() -> None:
    targets = {"X86_V3": True, "X86_V4": True, "AVX512_ICL": True, "AVX512_SPR": False}
    assert sweep.unhonoured({"NPY_DISABLE_CPU_FEATURES": "AVX512_SPR"}, _ENV, None) == []
    still = sweep.unhonoured({"NPY_DISABLE_CPU_FEATURES": "X86_V4"}, _ENV, targets)
    assert "still uses X86_V4" in still[0]
    unknown = sweep.unhonoured({"NPY_DISABLE_CPU_FEATURES": "AVX512F"}, {**_ENV, "numpy_simd": "X86_V2"}, targets)
    assert "not a dispatch target" in unknown[0]
    lacking = sweep.unhonoured({"NPY_DISABLE_CPU_FEATURES": "AVX512_SPR"}, _ENV, targets)
    assert "lacks AVX512_SPR" in lacking[0]


def test_unhonoured_ignores_what_the_run_cannot_tell() -> None:
    assert sweep.unhonoured({"ATEN_CPU_CAPABILITY": "avx2", "threads": "1"}, {"torch_version": None}) == []


# --------------------------------------------------------------------------- end to end


def _sweep(tmp_path: Any, *args: str) -> subprocess.CompletedProcess:
    import audit.probes  # noqa: F401

    if "torch.randn" not in registry.all_probes():
        pytest.skip("the torch.randn probe is not in the catalogue yet")
    pytest.importorskip("torch")
    cmd = [sys.executable, "-m", "audit", "sweep", "--results", str(tmp_path), "--probe", "torch.randn",
           "--seed", "0", "--no-repeat", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=SOURCE_ROOT, timeout=600)


def _manifest(tmp_path: Any) -> Dict[str, Any]:
    (path,) = glob.glob(os.path.join(str(tmp_path), "_sweep-*.json"))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_sweep_finds_the_dispatch_split_in_torch_randn(tmp_path: Any) -> None:
    from audit.store.runfile import read_run_file

    out = _sweep(tmp_path, "--axis", "ATEN_CPU_CAPABILITY=default,avx2")
    assert out.returncode == 1, out.stdout + out.stderr  # a divergence was found
    runs = _manifest(tmp_path)["runs"]
    assert [r["label"] for r in runs] == ["ATEN_CPU_CAPABILITY=default", "ATEN_CPU_CAPABILITY=avx2"]
    tables = [read_run_file(r["path"]).to_pylist() for r in runs]
    assert [t[0]["ATEN_CPU_CAPABILITY"] for t in tables] == ["default", "avx2"]
    assert [t[0]["cpu_capability"] for t in tables] == ["DEFAULT", "AVX2"]
    streams = {(r["params"], r["fingerprint"]) for t in tables for r in t if r["status"] == "ok"}
    assert len(streams) > len({p for p, _ in streams})  # some case has two streams
    assert "split by cpu_capability: AVX2 | DEFAULT" in out.stdout


def test_sweep_marks_a_level_torch_did_not_honour(tmp_path: Any) -> None:
    out = _sweep(tmp_path, "--axis", "ATEN_CPU_CAPABILITY=zvector")  # an s390x level: torch ignores it here
    assert "NOT HONOURED" in out.stdout
    (run,) = _manifest(tmp_path)["runs"]
    assert "ATEN_CPU_CAPABILITY=zvector: torch dispatched" in run["unhonoured"][0]


def test_sweep_reports_a_combination_that_cannot_start_and_goes_on(tmp_path: Any) -> None:
    pytest.importorskip("numpy", minversion="2.0")  # older numpy ignores NPY_ENABLE_CPU_FEATURES
    from audit.commands.sweep import numpy_targets

    lacking = [f for f, present in (numpy_targets(sys.executable) or {}).items() if not present]
    if not lacking:
        pytest.skip("this CPU has every numpy dispatch target: nothing numpy would refuse to enable")
    # numpy refuses to import when asked to enable a feature the CPU lacks
    out = _sweep(tmp_path, "--axis", f"NPY_ENABLE_CPU_FEATURES={lacking[0]}")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "FAILED" in out.stdout
    assert _manifest(tmp_path)["runs"][0]["error"]


def test_sweep_usage_errors_are_one_line_exit_2(tmp_path: Any) -> None:
    for axis in ("FOO", "X=", "threads=1,1"):
        out = subprocess.run([sys.executable, "-m", "audit", "sweep", "--results", str(tmp_path), "--axis", axis],
                             capture_output=True, text=True, cwd=SOURCE_ROOT, timeout=120)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")


# --------------------------------------------------------------------------- the axis records


def test_every_axis_record_names_how_it_is_applied_checked_and_shown() -> None:
    from audit.worker.environment import FIELDS

    for axis in sweep.AXES.values():
        assert axis.meaning and (axis.choices or axis.pattern is not None), axis.name
        if axis.apply is not sweep.Apply.LOAD:  # load: the spinners check themselves (test_load.py)
            assert axis.fields and set(axis.fields) <= set(FIELDS), axis.name
    assert sweep.AXES["ATEN_CPU_CAPABILITY"].fields == ("ATEN_CPU_CAPABILITY", "cpu_capability")
    assert [a.name for a in sweep.AXES.values() if a.targets is not None] == ["NPY_DISABLE_CPU_FEATURES"]


def test_omp_wait_policy_axis_one_record_without_a_field_of_its_own() -> None:
    """The extension example: an axis added as one record; the worker records it in ``settings``."""
    axis = sweep.parse_axis("OMP_WAIT_POLICY=ACTIVE,passive,unset")
    assert axis.values == ("active", "passive", "unset")
    assert sweep.AXES["OMP_WAIT_POLICY"].fields == ("settings",)
    with pytest.raises(UsageError, match="'spin' is not a valid value \\(active, passive\\)"):
        sweep.parse_axis("OMP_WAIT_POLICY=spin")
    spec = sweep.spec_for(RunSpec(), {"OMP_WAIT_POLICY": "passive"})
    assert spec.env["OMP_WAIT_POLICY"] == "passive"
    assert sweep.spec_for(RunSpec(), {"OMP_WAIT_POLICY": "unset"}).unset == ["OMP_WAIT_POLICY"]
    seen = {**_ENV, "settings": '{"OMP_WAIT_POLICY":"passive"}'}
    assert sweep.unhonoured({"OMP_WAIT_POLICY": "passive"}, seen) == []
    assert sweep.unhonoured({"OMP_WAIT_POLICY": "unset"}, {**_ENV, "settings": None}) == []
    notes = sweep.unhonoured({"OMP_WAIT_POLICY": "active"}, seen)
    assert notes == ["OMP_WAIT_POLICY=active: the worker saw OMP_WAIT_POLICY=passive"]
    assert sweep.unhonoured({"OMP_WAIT_POLICY": "active"}, {**_ENV, "settings": None}) == [
        "OMP_WAIT_POLICY=active: the worker saw OMP_WAIT_POLICY=None"]
    assert sweep.unhonoured({"OMP_WAIT_POLICY": "active"}, _ENV) == []  # nothing recorded: cannot tell


def test_the_sweep_help_lists_every_axis_record() -> None:
    from audit.commands.sweep import _axes_help

    text = _axes_help()
    for name, axis in sweep.AXES.items():
        assert f"  {name:<26} {axis.meaning}" in text


def test_docs_sweeps_names_every_axis() -> None:
    text = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "sweeps.md")).read()
    assert [name for name in sweep.AXES if f"`{name}`" not in text] == []


def test_flush_denormal_axis_a_library_call_in_two_files() -> None:
    """The library-call extension example: its record in axes.py and its entry in
    audit/worker/calls.py; honoured when process_state shows the worker's thread flushing."""
    axis = sweep.parse_axis("flush_denormal=OFF,on")
    assert axis.values == ("off", "on") and sweep.AXES["flush_denormal"].fields == ("process_state",)
    with pytest.raises(UsageError, match="'unset' is not a valid value \\(on, off\\)"):
        sweep.parse_axis("flush_denormal=unset")
    spec = sweep.spec_for(RunSpec(), {"flush_denormal": "on", "threads": "1"})
    assert spec.calls == {"flush_denormal": "on", "threads": "1"}
    flushing = {**_ENV, "process_state": '{"torch.flush_denormal":"True"}'}
    fresh = {**_ENV, "process_state": None}
    assert sweep.unhonoured({"flush_denormal": "on"}, flushing) == []
    assert sweep.unhonoured({"flush_denormal": "off"}, fresh) == []
    notes = sweep.unhonoured({"flush_denormal": "on"}, fresh)
    assert len(notes) == 1 and "torch.flush_denormal was False" in notes[0]
    assert sweep.unhonoured({"flush_denormal": "on"}, _ENV) == []  # no process_state: cannot tell
